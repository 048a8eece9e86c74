"""The test tree's own rules, checked on the source (ast), so that they keep holding:

- no module under tests/ edits ``sys.path`` (pytest's ``pythonpath`` puts the repository root on
  it; a temporary entry goes through ``pytest.MonkeyPatch.syspath_prepend``);
- the one in-memory KV double is ``tests/support/kv.py``: no class elsewhere is named ``KV...``
  or implements all five KVService methods itself;
- every directory of tests is a package, so a module is imported under one name only;
- helpers are named one way: a module under tests/ imports from ``tests.support`` (shared
  helpers) or from its own package's ``support`` module or package, never another test package's
  helpers, a test module or a conftest.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
KV_METHODS = {"get", "put", "delete", "list", "watch"}


def _modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def _name_of(path: Path) -> str:
    """The dotted module name of a file under tests/ (``tests.rpc.support`` ...)."""
    parts = path.relative_to(TESTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sys_path_edits(tree: ast.AST) -> list[int]:
    """Lines that touch ``sys.path`` (or import ``path`` from ``sys``)."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "sys"
            and any(alias.name == "path" for alias in node.names)
        ):
            lines.append(node.lineno)
    return lines


def kv_doubles(tree: ast.AST) -> list[str]:
    """Classes that look like another KV double: named ``KV...`` or implementing the whole
    KVService (get, put, delete, list and watch) themselves."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        methods = {
            item.name
            for item in node.body
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        if node.name.startswith("KV") or methods >= KV_METHODS:
            found.append(node.name)
    return found


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import, relative ones resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from tests.x import support`` names the module in the alias
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def helper_import_allowed(importer: str, imported: str) -> bool:
    """Whether module ``importer`` (under tests) may import ``imported``."""
    parts = imported.split(".")
    if parts[0] != "tests" or len(parts) < 2:
        return True  # not the test tree (or ``tests`` itself)
    if parts[1] == "support":
        return True
    own = importer.split(".")[1] if importer.count(".") >= 1 else ""
    if parts[1] != own:
        return False
    rest = parts[2:]
    if not rest:
        return True  # the package itself
    # the package's own helpers: <package>/support(.py|/) at any depth of the package
    return "support" in rest and not any(p.startswith("test_") or p == "conftest" for p in rest)


def test_no_module_under_tests_edits_sys_path() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in _modules()
        for line in sys_path_edits(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == [], "use pyproject's pythonpath or MonkeyPatch.syspath_prepend"


def test_the_only_kv_double_is_in_tests_support() -> None:
    support = TESTS / "support"
    offenders = [
        f"{path.relative_to(TESTS.parent)}: class {name}"
        for path in _modules()
        if support not in path.parents
        for name in kv_doubles(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == [], "use tests.support.kv.KV (its knobs), or a probe of a few methods"


def test_every_test_directory_is_a_package() -> None:
    missing = sorted(
        str(directory.relative_to(TESTS.parent))
        for directory in {path.parent for path in _modules()}
        if not (directory / "__init__.py").exists()
    )
    assert missing == [], "add an __init__.py so that modules import as tests.<package>..."


def test_helpers_come_from_tests_support_or_the_own_package_support() -> None:
    offenders = []
    for path in _modules():
        module = _name_of(path)
        tree = ast.parse(path.read_text(), str(path))
        for line, imported in imported_modules(tree, module, path.name == "__init__.py"):
            if not helper_import_allowed(module, imported):
                offenders.append(f"{path.relative_to(TESTS.parent)}:{line}: {imported}")
    assert offenders == [], "shared helpers belong in tests/support, a package's own in its support"


@pytest.mark.parametrize(
    ("source", "sys_path", "doubles"),
    [
        ("import sys\nsys.path.insert(0, 'x')\n", [2], []),
        ("from sys import path\n", [1], []),
        ("import os\nos.path.join('a')\n", [], []),
        ("class KVFake:\n    pass\n", [], ["KVFake"]),
        (
            "class Store:\n"
            + "".join(f"    async def {m}(self): ...\n" for m in sorted(KV_METHODS)),
            [],
            ["Store"],
        ),
        ("class Probe:\n    async def get(self): ...\n    async def watch(self): ...\n", [], []),
    ],
    ids=["sys.path.insert", "from-sys-import-path", "os.path", "KV-name", "KVService", "probe"],
)
def test_the_checks_catch_what_they_forbid(
    source: str, sys_path: list[int], doubles: list[str]
) -> None:
    tree = ast.parse(source)
    assert sys_path_edits(tree) == sys_path
    assert kv_doubles(tree) == doubles


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("tests.rpc.test_asgi", "tests.support.kv", True),
        ("tests.rpc.interceptors.test_interceptor_auth", "tests.rpc.interceptors.support", True),
        ("tests.adversarial.test_fuzz", "tests.adversarial.support.children", True),
        ("tests.interop.conftest", "tests.plugin.procs", False),
        ("tests.host.test_router", "tests.launch.support", False),
        ("tests.interop.test_host_interop", "tests.interop.test_buf_curl", False),
        ("tests.interop.test_grpcio", "tests.interop.conftest", False),
        ("tests.rpc.test_asgi", "examples.kv.store", True),
    ],
)
def test_the_helper_rule_tells_own_and_shared_from_foreign(
    importer: str, imported: str, allowed: bool
) -> None:
    assert helper_import_allowed(importer, imported) is allowed


def test_relative_imports_resolve_against_the_importer() -> None:
    tree = ast.parse("from .support.wire import Reply\nfrom . import answers\n")
    names = [name for _, name in imported_modules(tree, "tests.adversarial.test_x", False)]
    assert names[:2] == ["tests.adversarial.support.wire", "tests.adversarial.support.wire.Reply"]
    assert "tests.adversarial.answers" in names
