"""Other libraries' private parts, each borrowed in one place: one module per library.

`connectrpc`, `pyqwest` and `protobuf_py` re-export what the rest of plugin-di uses from their
library's private modules and attributes, and check at import that the installed version is
inside the range plugin-di was tested with (a `VersionRange`). An untested version gets an
`UntestedVersionWarning`, not an error: it may well work, and the import fails by itself if a
borrowed name is gone. tests/compat fails when the installed version is outside the range.

These modules import nothing of plugin-di (an import-linter contract keeps it so).
"""

from __future__ import annotations

import importlib.metadata
import re
import warnings
from dataclasses import dataclass

__all__ = ["UntestedVersionWarning", "VersionRange", "installed_version", "release"]

_RELEASE = re.compile(r"\s*v?(\d+(?:\.\d+)*)")


class UntestedVersionWarning(RuntimeWarning):
    """A library whose private parts plugin-di borrows is installed in an untested version."""


def release(version: str) -> tuple[int, ...] | None:
    """The release numbers of a version string ("0.13.1rc2" -> (0, 13, 1)); None if none."""
    match = _RELEASE.match(version)
    if match is None:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None when its metadata is not found."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True, slots=True)
class VersionRange:
    """The versions of one distribution plugin-di was tested with: ``low <= v < high``."""

    distribution: str  # the distribution that installs the borrowed module
    low: tuple[int, ...]  # inclusive
    high: tuple[int, ...]  # exclusive
    borrowed: str  # what plugin-di borrows, for the warning
    declared_as: str = ""  # the name in pyproject.toml, when it differs

    @property
    def specifier(self) -> str:
        """The range as a requirement specifier, e.g. ``>=0.13,<0.14``."""
        return f">={'.'.join(map(str, self.low))},<{'.'.join(map(str, self.high))}"

    def covers(self, version: str) -> bool:
        """Whether a version string is inside the tested range."""
        numbers = release(version)
        return numbers is not None and self.low <= numbers < self.high

    def untested(self, version: str | None) -> str | None:
        """What is wrong with a version (None: nothing, it is inside the range)."""
        if version is not None and self.covers(version):
            return None
        found = "is not installed" if version is None else f"{version} is installed"
        return (
            f"plugin-di borrows private parts of {self.distribution} ({self.borrowed}) and was "
            f"tested with {self.distribution}{self.specifier}, but {found}; if something "
            f"breaks, install {self.declared_as or self.distribution}{self.specifier}"
        )

    def warn_if_untested(self, version: str | None) -> None:
        """Warn (`UntestedVersionWarning`) when a version is outside the tested range."""
        problem = self.untested(version)
        if problem is not None:
            warnings.warn(problem, UntestedVersionWarning, stacklevel=2)

    def check_installed(self) -> None:
        """Warn when the installed version is outside the tested range (at import)."""
        self.warn_if_untested(installed_version(self.distribution))
