"""Resolve ``MODULE:ATTR`` the way uvicorn does: the current directory is importable."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


class TargetError(Exception):
    """MODULE:ATTR does not import or names nothing."""


def load_target(spec: str) -> Any:
    """Import ``MODULE`` and return its attribute ``ATTR`` (dotted paths allowed)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"expected MODULE:ATTR, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if not _names_the_target(exc, module_name):
            raise  # the module itself failed to import something: its traceback tells where
        raise TargetError(f"cannot import module {module_name!r}: {exc}") from exc
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attr!r}") from None
    return value


def _names_the_target(error: ImportError, module_name: str) -> bool:
    """Whether ``error`` says that ``module_name`` (or a package above it) does not exist."""
    if not isinstance(error, ModuleNotFoundError) or error.name is None:
        return False
    return module_name == error.name or module_name.startswith(error.name + ".")
