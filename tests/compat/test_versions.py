"""The tested ranges of the libraries whose private parts plugin_di._compat borrows.

The installed versions must be inside the ranges (this is the test that fails on an untested
version; an import only warns), the ranges must be the ones pyproject.toml declares, and the
check itself is exercised with made-up version strings.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
import warnings
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from plugin_di._compat import (
    UntestedVersionWarning,
    VersionRange,
    connectrpc,
    installed_version,
    protobuf_py,
    pyqwest,
    release,
)

COMPAT_MODULES = [connectrpc, pyqwest, protobuf_py]
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _declared() -> dict[str, SpecifierSet]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return {req.name: req.specifier for req in requirements}


@pytest.mark.parametrize("module", COMPAT_MODULES, ids=lambda m: m.__name__)
def test_installed_version_is_inside_the_tested_range(module: ModuleType) -> None:
    tested: VersionRange = module.TESTED
    version = installed_version(tested.distribution)
    assert version is not None, f"{tested.distribution} is not installed"
    assert tested.covers(version), tested.untested(version)


@pytest.mark.parametrize("module", COMPAT_MODULES, ids=lambda m: m.__name__)
def test_pyproject_declares_the_tested_range(module: ModuleType) -> None:
    tested: VersionRange = module.TESTED
    name = tested.declared_as or tested.distribution
    declared = _declared()
    assert name in declared, f"{name} is not in [project.dependencies]"
    assert declared[name] == SpecifierSet(tested.specifier)


def test_release_reads_the_leading_numbers() -> None:
    assert release("0.13.0") == (0, 13, 0)
    assert release("0.13.1rc2") == (0, 13, 1)
    assert release("1.2.3+local.7") == (1, 2, 3)
    assert release("v2") == (2,)
    assert release("unknown") is None


RANGE = VersionRange("somelib", (0, 13), (0, 14), borrowed="_private.thing")


@pytest.mark.parametrize("version", ["0.13", "0.13.0", "0.13.9", "0.13.0rc1", "0.13.2.post1"])
def test_versions_inside_the_range_are_covered(version: str) -> None:
    assert RANGE.covers(version)
    assert RANGE.untested(version) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RANGE.warn_if_untested(version)  # silent


@pytest.mark.parametrize("version", ["0.12.9", "0.14.0", "0.14.0rc1", "1.0", "garbage"])
def test_versions_outside_the_range_warn(version: str) -> None:
    assert not RANGE.covers(version)
    with pytest.warns(UntestedVersionWarning) as caught:
        RANGE.warn_if_untested(version)
    message = str(caught[0].message)
    assert f"{version} is installed" in message
    assert "somelib>=0.13,<0.14" in message
    assert "_private.thing" in message


def test_a_missing_distribution_warns() -> None:
    assert installed_version("no-such-distribution-plugin-di") is None
    with pytest.warns(UntestedVersionWarning, match="is not installed"):
        RANGE.warn_if_untested(None)


def test_the_hint_names_the_declared_distribution() -> None:
    message = protobuf_py.TESTED.untested("0.8.0")
    assert message is not None
    assert "install protobuf-py>=0.7,<0.8" in message


def test_importing_on_an_untested_version_warns_and_still_imports() -> None:
    # A fresh interpreter that reports 99.0 for the three distributions: each compat module
    # warns once on import, names its library, and its borrowed names are still there.
    script = textwrap.dedent(
        """
        import importlib.metadata, warnings
        real = importlib.metadata.version
        FAKE = {"connectrpc", "pyqwest", "protobuf-py-pure"}
        importlib.metadata.version = lambda name: "99.0" if name in FAKE else real(name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from plugin_di._compat import UntestedVersionWarning
            from plugin_di._compat.connectrpc import MetadataInterceptorsRun
            from plugin_di._compat.pyqwest import get_sync_timeout
            from plugin_di._compat.protobuf_py import file_desc
        for w in caught:
            if issubclass(w.category, UntestedVersionWarning):
                print(str(w.message).split(" (")[0])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "plugin-di borrows private parts of connectrpc",
        "plugin-di borrows private parts of pyqwest",
        "plugin-di borrows private parts of protobuf-py-pure",
    ]
