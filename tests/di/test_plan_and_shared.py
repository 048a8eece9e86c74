"""The start plan comes from networkx; the Lifecycle's scopes and shared nodes; app markers."""

from __future__ import annotations

import networkx as nx
import pytest
from dependency_injector import containers, providers

import plugin_di.di
from plugin_di.di._markers import AppLifecycle, AppSettings
from plugin_di.di.app import App
from plugin_di.di.errors import StartError
from plugin_di.di.events import HookExecuted
from plugin_di.di.lifecycle import Hook, Lifecycle
from plugin_di.settings import Settings
from tests.di.support import AsyncService, Events, Log, SyncService, settings


def wide(log: Log) -> type[containers.DeclarativeContainer]:
    """Two roots, a chain and a diamond: several providers per start stage."""

    class Wide(containers.DeclarativeContainer):
        log_ = providers.Object(log)
        a = providers.Singleton(SyncService, "a", log_)
        b = providers.Singleton(SyncService, "b", log_)
        c = providers.Singleton(SyncService, "c", log_, a)
        d = providers.Singleton(SyncService, "d", log_, a, b)
        e = providers.Singleton(SyncService, "e", log_, c, d)
        f = providers.Singleton(SyncService, "f", log_, b)

    return Wide


def test_start_stages_are_networkxs_topological_generations() -> None:
    app = App(wide(Log()), sinks=[])
    needs = app.graph  # edges point from a provider to what it needs
    generations = [sorted(g) for g in nx.topological_generations(needs.reverse())]
    assert [sorted(stage) for stage in app.start_order()] == generations
    assert app.start_order() == [
        ["Wide.log_"],
        ["Wide.a", "Wide.b"],
        ["Wide.c", "Wide.d", "Wide.f"],
        ["Wide.e"],
    ]
    assert {n: needs.nodes[n]["stage"] for n in ("Wide.a", "Wide.e")} == {"Wide.a": 2, "Wide.e": 4}


async def test_stop_runs_the_start_order_backwards() -> None:
    log = Log()
    app = App(wide(log), settings=settings(), sinks=[])
    await app.start()
    await app.stop()
    assert log.phase("start") == ["a", "b", "c", "d", "f", "e"]
    assert log.phase("stop") == ["e", "f", "d", "c", "b", "a"]


class Pool:
    """A shared object: counts how often it was made, started and stopped."""

    made = 0

    def __init__(self, log: Log) -> None:
        Pool.made += 1
        self.log = log

    async def open(self) -> None:
        self.log.add("start", "pool")

    async def close(self) -> None:
        self.log.add("stop", "pool")


def user(name: str, lifecycle: Lifecycle, log: Log, *deps: object) -> SyncService:
    """A provider that asks its app for the shared pool while it is built."""
    pool = lifecycle.shared(
        "pool",
        lambda: Pool(log),
        lambda p: Hook(on_start=p.open, on_stop=p.close, name="pool"),
    )
    service = SyncService(name, log, *deps)
    service.deps = (pool, *deps)
    return service


async def test_a_shared_object_is_made_once_and_its_node_brackets_its_users() -> None:
    log, events = Log(), Events()
    Pool.made = 0

    class Shared(containers.DeclarativeContainer):
        lifecycle = providers.Dependency(instance_of=Lifecycle)
        log_ = providers.Object(log)
        alone = providers.Singleton(AsyncService, "alone", log_)
        left = providers.Singleton(user, "left", lifecycle, log_)
        right = providers.Singleton(user, "right", lifecycle, log_, left)

    app = App(Shared, settings=settings(), sinks=[events])
    await app.start()
    assert Pool.made == 1
    assert app.container.left().deps[0] is app.container.right().deps[0]
    assert app.lifecycle.find_shared("pool") is app.container.left().deps[0]
    assert app.lifecycle.find_shared("other") is None
    started = log.phase("start")
    assert started.index("pool") < started.index("left") < started.index("right")
    await app.stop()
    stopped = log.phase("stop")
    assert stopped.index("right") < stopped.index("left") < stopped.index("pool")
    nodes = {e.provider for e in events.of(HookExecuted)}  # type: ignore[attr-defined]
    assert "<pool>" in nodes


def test_the_lifecycle_shares_and_owns_hooks_only_while_a_provider_is_built() -> None:
    lifecycle = Lifecycle()
    with pytest.raises(RuntimeError, match="while a provider is built"):
        lifecycle.shared("pool", object, lambda _: Hook(on_start=lambda: None))
    with lifecycle.building("Root.db"):
        assert lifecycle.owner == "Root.db"
        lifecycle.append(Hook(on_start=lambda: None, name="open"))
    assert lifecycle.owner is None
    assert [h.name for h in lifecycle.hooks("Root.db")] == ["open"]
    lifecycle.append(Hook(on_start=lambda: None, name="app-level"))  # before the seal: the app's
    lifecycle.seal()
    with pytest.raises(RuntimeError, match="before the app starts"):
        lifecycle.append(Hook(on_start=lambda: None))
    with lifecycle.building("Root.late"):
        lifecycle.append(Hook(on_stop=lambda: None, name="late"))  # a provider built later
    assert [h.name for h in lifecycle.hooks(None)] == ["app-level"]


def test_app_markers_give_a_factory_the_apps_objects_and_none_outside_an_app() -> None:
    seen: list[tuple[object, object]] = []

    def make(lifecycle: Lifecycle | None, settings: Settings | None) -> str:
        seen.append((lifecycle, settings))
        return "made"

    class Marked(containers.DeclarativeContainer):
        thing = providers.Singleton(make, AppLifecycle(), AppSettings())

    alone = Marked()
    assert alone.thing() == "made"
    assert seen == [(None, None)]  # built outside an App: nothing ambient leaks in

    chosen = settings(hook_timeout=3)
    first, second = App(Marked, settings=chosen, sinks=[]), App(Marked, sinks=[])
    first.container.thing()
    second.container.thing()
    assert seen[1] == (first.lifecycle, chosen)
    assert seen[2][0] is second.lifecycle
    assert seen[2][0] is not first.lifecycle


async def test_an_interrupt_before_start_aborts_it() -> None:
    log = Log()
    app = App(wide(log), settings=settings(), sinks=[])
    app.interrupt("test says stop")
    with pytest.raises(StartError, match="start interrupted \\(test says stop\\)"):
        await app.start()
    assert log.phase("start") == []


def test_the_package_lists_its_public_names() -> None:
    assert "App" in plugin_di.di.__all__
    for name in plugin_di.di.__all__:
        assert getattr(plugin_di.di, name) is not None, name
    assert not [n for n in plugin_di.di.__all__ if n.startswith("_")]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = plugin_di.di.Nope  # type: ignore[attr-defined]
