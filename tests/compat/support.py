"""The imports of plugin-di's source, read with `ast` (shared by the tests of this package)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "plugin_di"


@dataclass(frozen=True)
class SourceImport:
    """One imported module (and the names taken from it) at one place in src/."""

    importer: str  # dotted name of the importing module
    line: int
    module: str  # absolute dotted name; "" for a relative import
    names: tuple[str, ...]  # the names of a `from ... import`, else ()
    lazy: bool  # inside a function, or guarded by `except ImportError`

    @property
    def where(self) -> str:
        return f"{self.importer}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _guards_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(
            isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
            for n in names
        ):
            return True
    return False


def imports_of(source: str, importer: str) -> Iterator[SourceImport]:
    """Every import statement and ``importlib.import_module("literal")`` call of a module."""

    def visit(node: ast.AST, lazy: bool) -> Iterator[SourceImport]:
        for child in ast.iter_child_nodes(node):
            child_lazy = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Try) and _guards_import_error(child):
                for statement in child.body:
                    yield from visit_one(statement, True)
                for part in (*child.handlers, *child.orelse, *child.finalbody):
                    yield from visit_one(part, lazy)
                continue
            yield from visit_one(child, child_lazy)

    def visit_one(node: ast.AST, lazy: bool) -> Iterator[SourceImport]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield SourceImport(importer, node.lineno, alias.name, (), lazy)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or "" if node.level == 0 else ""
            names = tuple(alias.name for alias in node.names)
            yield SourceImport(importer, node.lineno, module, names, lazy)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield SourceImport(importer, node.lineno, node.args[0].value, (), lazy)
        lazy = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from visit(node, lazy)

    yield from visit(ast.parse(source), False)


def source_imports() -> Iterator[SourceImport]:
    """The imports of every module under src/plugin_di."""
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        yield from imports_of(path.read_text(), module_name(path))
