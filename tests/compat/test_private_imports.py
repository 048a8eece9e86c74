"""No module outside plugin_di._compat imports another library's private module (``x._y``) or
private name (``from x import _y``): those are borrowed in one `_compat` module per library."""

from __future__ import annotations

from collections.abc import Iterable

from tests.compat.support import PACKAGE, SourceImport, imports_of, source_imports

COMPAT = f"{PACKAGE}._compat"


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def private_borrowings(found: Iterable[SourceImport]) -> list[str]:
    """Where a module outside `_compat` imports another library's private parts."""
    problems = []
    for imp in found:
        if imp.importer == COMPAT or imp.importer.startswith(COMPAT + "."):
            continue
        top, *rest = imp.module.split(".")
        if top in ("", PACKAGE, "__future__"):
            continue  # a relative import, plugin-di's own modules
        if any(_private(part) for part in rest):
            problems.append(f"{imp.where} imports the private module {imp.module}")
        for name in imp.names:
            if _private(name):
                problems.append(f"{imp.where} imports the private name {imp.module}.{name}")
    return problems


def test_only_compat_modules_import_other_libraries_private_parts() -> None:
    assert private_borrowings(source_imports()) == []


def test_the_check_finds_each_form() -> None:
    source = """
import lib._inner
from lib._inner import thing
from lib import _helper, public
from lib.__about__ import version
from __future__ import annotations
from plugin_di.rpc._http1 import split_url
from ._sibling import x

def later():
    import importlib
    importlib.import_module("other._hidden")
"""
    assert private_borrowings(imports_of(source, "plugin_di.rpc.example")) == [
        "plugin_di.rpc.example:2 imports the private module lib._inner",
        "plugin_di.rpc.example:3 imports the private module lib._inner",
        "plugin_di.rpc.example:4 imports the private name lib._helper",
        "plugin_di.rpc.example:12 imports the private module other._hidden",
    ]
    assert private_borrowings(imports_of(source, "plugin_di._compat.lib")) == []
