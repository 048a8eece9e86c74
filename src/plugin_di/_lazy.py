"""Lazy re-exports for a package ``__init__``: each public name is imported on first use.

A package face that imported its modules eagerly would load the whole layer into every
process that touches one module of it: the zygote, the CLI, a plugin. Its ``__init__``
lists the names in ``__all__``, imports them for type checkers only, and ends with
``__getattr__ = lazy_exports(__name__, {module: (name, ...), ...})``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, Iterable[str]]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``modules`` maps each module to the public
    names it defines; a name is imported on first use, then kept in the package."""
    exports = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
