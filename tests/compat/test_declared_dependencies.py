"""Every library src/ imports is declared in pyproject.toml, with a range that has an upper bound.

An import is mapped to its distribution with `importlib.metadata.packages_distributions`. A
runtime dependency covers every import; a distribution that an extra declares covers only
imports made lazily (in a function, or guarded by ``except ImportError``), or by a module that
only the extra's tool loads (`TOOL_MODULES`).
"""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
from collections.abc import Iterable
from functools import cache

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.compat.support import PACKAGE, SRC, SourceImport, imports_of, source_imports

PYPROJECT = SRC.parent / "pyproject.toml"

# Extras that name what src/ may import; dev and bench only name tools.
SOURCE_EXTRAS = ("redis", "pytest", "otel")

# Modules loaded only by a tool an extra installs: pytest loads the pytest11 entry point.
TOOL_MODULES = {f"{PACKAGE}.pytest_plugin": "pytest"}

# Packages that exist for an extra: nothing outside imports them at import time (the
# import-linter contracts check it), so their modules may import the extra's libraries.
EXTRA_PACKAGES = {f"{PACKAGE}.otel": "otel"}


@cache
def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads(PYPROJECT.read_text())["project"]
    return project


def runtime_requirements() -> list[Requirement]:
    return [Requirement(line) for line in _project()["dependencies"]]  # type: ignore[attr-defined]


def extra_requirements(extra: str) -> list[Requirement]:
    extras: dict[str, list[str]] = _project()["optional-dependencies"]  # type: ignore[assignment]
    return [Requirement(line) for line in extras[extra]]


def covered(requirements: Iterable[Requirement]) -> set[str]:
    """Declared distributions, plus the ones a declared distribution pins exactly (protobuf-py
    is a meta package: its ``protobuf`` module comes from protobuf-py-pure, pinned ``==``)."""
    names = set()
    for req in requirements:
        name = canonicalize_name(req.name)
        names.add(name)
        try:
            requires = importlib.metadata.requires(req.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            pinned = Requirement(line)
            if any(spec.operator == "==" for spec in pinned.specifier):
                names.add(canonicalize_name(pinned.name))
    return names


def undeclared(
    found: Iterable[SourceImport],
    runtime: set[str],
    extras: dict[str, set[str]],
    distributions: dict[str, list[str]],
) -> list[str]:
    """Where src/ imports a third-party module that no fitting declaration covers."""
    problems = []
    for imp in found:
        top = imp.module.split(".")[0]
        if top in ("", PACKAGE, "__future__") or top in sys.stdlib_module_names:
            continue
        names = {canonicalize_name(d) for d in distributions.get(top, [])}
        if not names:
            problems.append(f"{imp.where} imports {top}, which no installed distribution provides")
            continue
        if names & runtime:
            continue
        extra = next((e for e, declared in extras.items() if names & declared), None)
        if extra is None:
            problems.append(f"{imp.where} imports {top} ({', '.join(sorted(names))}): undeclared")
        elif not (
            imp.lazy or TOOL_MODULES.get(imp.importer) == extra or _extra_package(imp) == extra
        ):
            problems.append(
                f"{imp.where} imports {top} from the [{extra}] extra at import time: "
                "import it lazily or declare it a runtime dependency"
            )
    return problems


def _extra_package(imp: SourceImport) -> str | None:
    for package, extra in EXTRA_PACKAGES.items():
        if imp.importer == package or imp.importer.startswith(package + "."):
            return extra
    return None


def test_every_imported_library_is_declared() -> None:
    runtime = covered(runtime_requirements())
    extras = {extra: covered(extra_requirements(extra)) for extra in SOURCE_EXTRAS}
    distributions = importlib.metadata.packages_distributions()
    assert undeclared(source_imports(), runtime, extras, distributions) == []


def test_every_declared_range_has_an_upper_bound() -> None:
    requirements = runtime_requirements()
    for extra in SOURCE_EXTRAS:
        requirements += extra_requirements(extra)
    unbounded = [
        str(req)
        for req in requirements
        if not any(spec.operator in ("<", "<=", "==", "~=") for spec in req.specifier)
    ]
    assert unbounded == []


def test_the_check_finds_undeclared_and_eager_extras() -> None:
    source = """
import declared.sub
import undeclared_lib
import optional_lib
import json
from . import sibling
from plugin_di import settings

def lazily():
    import optional_lib

try:
    import optional_lib
except ImportError:
    pass
"""
    distributions = {
        "declared": ["declared-dist"],
        "undeclared_lib": ["undeclared-dist"],
        "optional_lib": ["optional-dist"],
    }
    found = imports_of(source, "plugin_di.example")
    assert undeclared(found, {"declared-dist"}, {"opt": {"optional-dist"}}, distributions) == [
        "plugin_di.example:3 imports undeclared_lib (undeclared-dist): undeclared",
        "plugin_di.example:4 imports optional_lib from the [opt] extra at import time: "
        "import it lazily or declare it a runtime dependency",
    ]
