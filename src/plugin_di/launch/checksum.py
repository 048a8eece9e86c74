"""Integrity: the SHA-256 of a plugin's executable or module file, checked before launch.

As go-plugin's ``SecureConfig``: a mismatch refuses to launch. For ``python -m
module`` the file checked is the module's source (``__main__.py`` for a package);
for any other command, the executable found on PATH.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

_CHUNK = 1024 * 1024


class ChecksumMismatchError(RuntimeError):
    """The plugin's file does not have the expected SHA-256; it was not launched."""

    def __init__(self, plugin: str, path: Path, expected: str, actual: str) -> None:
        self.plugin, self.path, self.expected, self.actual = plugin, path, expected, actual
        super().__init__(
            f"plugin {plugin!r} refused to launch: SHA-256 of {path} is {actual}, "
            f"expected {expected}; the file changed since the checksum was recorded "
            "(reinstall the plugin, or update the checksum if the change is trusted)"
        )


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def module_file(module: str) -> Path:
    """The file ``python -m module`` runs."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"module {module!r} is not importable")
    if spec.submodule_search_locations is not None:  # a package: -m runs its __main__
        main = importlib.util.find_spec(f"{module}.__main__")
        if main is None or main.origin is None:
            raise FileNotFoundError(f"package {module!r} has no __main__ module")
        return Path(main.origin)
    return Path(spec.origin)


def command_file(command: Sequence[str]) -> Path:
    """The file whose checksum stands for ``command``: the ``-m`` module, or the executable."""
    args = list(command)
    if len(args) >= 3 and args[1] == "-m":
        return module_file(args[2])
    found = shutil.which(args[0])
    if found is None:
        raise FileNotFoundError(f"executable {args[0]!r} not found")
    return Path(found)


def verify_checksum(plugin: str, path: str | os.PathLike[str], expected: str) -> None:
    """Raise `ChecksumMismatchError` unless ``path`` hashes to ``expected`` (hex, any case)."""
    actual = sha256_file(path)
    wanted = expected.strip().lower().removeprefix("sha256:")
    if not hmac.compare_digest(actual, wanted):
        raise ChecksumMismatchError(plugin, Path(path), wanted, actual)
