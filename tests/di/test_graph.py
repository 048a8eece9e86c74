"""Validation messages (cycle, missing dependency, provider that raises) and graph exports."""

from __future__ import annotations

import inspect
import os

import pytest
from dependency_injector import containers, providers

from plugin_di.di.app import App
from plugin_di.di.errors import CycleError, MissingDependencyError, ProviderBuildError
from tests.di.support import settings


class Pool:
    def __init__(self, url: str) -> None:
        self.url = url


class Api:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool


class Cyclic(containers.DeclarativeContainer):
    a = providers.Singleton(dict)
    b = providers.Singleton(dict, a=a)
    c = providers.Singleton(dict, b=b)


Cyclic.a.add_kwargs(c=Cyclic.c)


class Storage(containers.DeclarativeContainer):
    url = providers.Dependency(instance_of=str)
    pool = providers.Singleton(Pool, url)


class Missing(containers.DeclarativeContainer):
    db = providers.Container(Storage)
    api = providers.Singleton(Api, db.pool)


def explode() -> Pool:
    raise RuntimeError("kaput")


class Raises(containers.DeclarativeContainer):
    fine = providers.Object("ok")
    boom = providers.Singleton(explode)


def line_of(source: str) -> str:
    """tests/di/test_graph.py:N of the first line containing ``source``."""
    lines, _ = inspect.findsource(Raises)
    number = next(n for n, line in enumerate(lines, 1) if source in line)
    return f"{os.path.relpath(__file__)}:{number}"


def test_cycle_is_reported_with_its_path() -> None:
    app = App(Cyclic, sinks=[])
    with pytest.raises(CycleError) as caught:
        app.validate()
    assert caught.value.path == ["Cyclic.a", "Cyclic.c", "Cyclic.b", "Cyclic.a"]
    assert str(caught.value).splitlines()[0] == (
        "dependency cycle: Cyclic.a -> Cyclic.c -> Cyclic.b -> Cyclic.a"
    )
    assert f"Cyclic.a declared at {line_of('a = providers.Singleton(dict)')}" in str(caught.value)


def test_missing_dependency_is_reported_with_the_chain_that_needs_it() -> None:
    app = App(Missing, sinks=[])
    with pytest.raises(MissingDependencyError) as caught:
        app.validate()
    where = line_of("url = providers.Dependency(instance_of=str)")
    assert str(caught.value).splitlines()[:2] == [
        f"missing dependency: Missing.db.url (declared at {where}) is a "
        "providers.Dependency(instance_of=str) that nothing provides",
        "  needed by: Missing.api -> Missing.db.pool -> Missing.db.url",
    ]


def test_a_provided_dependency_is_not_missing() -> None:
    class Provided(containers.DeclarativeContainer):
        url = providers.Object("postgres://")
        db = providers.Container(Storage, url=url)
        api = providers.Singleton(Api, db.pool)

    app = App(Provided, sinks=[])
    app.validate()
    assert app.start_order()[-1] == ["Provided.api"]


def test_overriding_a_provider_replaces_its_dependencies() -> None:
    container = Missing()
    container.db.pool.override(providers.Object(Pool("fake")))
    App(container, sinks=[]).validate()  # the missing url is no longer needed
    container.db.pool.reset_override()


async def test_provider_that_raises_is_reported_with_name_and_location() -> None:
    app = App(Raises, settings=settings(), sinks=[])
    with pytest.raises(ProviderBuildError) as caught:
        await app.start()
    where = line_of("boom = providers.Singleton(explode)")
    assert str(caught.value).splitlines()[0] == (
        f"cannot build Raises.boom declared at {where}: RuntimeError: kaput"
    )
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert app.state == "failed"


def test_graph_is_a_networkx_digraph_with_stages() -> None:
    class Wide(containers.DeclarativeContainer):
        url = providers.Object("x")
        pool = providers.Singleton(Pool, url)
        api = providers.Singleton(Api, pool)

    graph = App(Wide, sinks=[]).graph
    assert set(graph.edges) == {("Wide.pool", "Wide.url"), ("Wide.api", "Wide.pool")}
    assert graph.nodes["Wide.api"]["stage"] == 3
    assert graph.nodes["Wide.url"]["kind"] == "Object"


def test_exports_show_the_graph_and_the_start_order() -> None:
    class Shop(containers.DeclarativeContainer):
        url = providers.Object("x")
        pool = providers.Singleton(Pool, url)
        api = providers.Singleton(Api, pool)
        admin = providers.Singleton(Api, pool)

    app = App(Shop, sinks=[])
    text = app.export("text")
    assert text.splitlines()[:5] == [
        "Shop: 4 providers, 3 edges",
        "start order (each stage may start concurrently):",
        "  1. Shop.url",
        "  2. Shop.pool",
        "  3. Shop.api, Shop.admin",
    ]
    assert "Shop.api (Singleton, stage 3)\n└── Shop.pool (Singleton, stage 2)\n" in text
    assert "Shop.pool (Singleton, stage 2) ..." in text  # shown once, then referenced
    dot = app.export("dot")
    assert dot.startswith('digraph "Shop" {')
    assert '"Shop.api" -> "Shop.pool";' in dot
    assert '{ rank=same; "Shop.api"; "Shop.admin"; }' in dot
    mermaid = app.export("mermaid")
    assert mermaid.startswith("flowchart BT")
    assert 'n0["Shop.url<br/>Object, stage 1"]' in mermaid
    assert "n2 --> n1" in mermaid
    assert "%%   3. Shop.api, Shop.admin" in mermaid


def test_export_of_a_cyclic_graph_says_so() -> None:
    text = App(Cyclic, sinks=[]).export("text")
    assert "start order: none, dependency cycle: Cyclic.a -> Cyclic.c" in text
    with pytest.raises(ValueError, match="unknown graph format"):
        App(Cyclic, sinks=[]).export("svg")  # type: ignore[arg-type]
