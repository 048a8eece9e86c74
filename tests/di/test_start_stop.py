"""Start order, concurrency, sync and async hooks, explicit hooks, stop semantics."""

from __future__ import annotations

import asyncio

import pytest
from dependency_injector import containers, providers

from plugin_di.di.app import App
from plugin_di.di.lifecycle import Hook, Lifecycle, LifecycleProvider
from tests.di.support import AsyncService, Log, SyncService, settings


def diamond(log: Log) -> type[containers.DeclarativeContainer]:
    class Diamond(containers.DeclarativeContainer):
        log_ = providers.Object(log)
        a = providers.Singleton(AsyncService, "a", log_)
        b = providers.Singleton(AsyncService, "b", log_, a)
        c = providers.Singleton(SyncService, "c", log_, a)
        d = providers.Singleton(AsyncService, "d", log_, b, c)

    return Diamond


async def test_diamond_starts_in_dependency_order_and_stops_in_reverse() -> None:
    log = Log()
    app = App(diamond(log), settings=settings(), sinks=[])
    assert app.start_order() == [
        ["Diamond.log_"],
        ["Diamond.a"],
        ["Diamond.b", "Diamond.c"],
        ["Diamond.d"],
    ]
    await app.start()
    started = log.phase("start")
    assert started[0] == "a"
    assert started[-1] == "d"
    assert sorted(started[1:3]) == ["b", "c"]
    await app.stop()
    stopped = log.phase("stop")
    assert stopped[0] == "d"
    assert stopped[-1] == "a"
    assert sorted(stopped[1:3]) == ["b", "c"]
    assert app.state == "stopped"


async def test_independent_hooks_run_concurrently() -> None:
    began = {"left": asyncio.Event(), "right": asyncio.Event()}

    class Waits:
        def __init__(self, me: str, other: str) -> None:
            self.me, self.other = me, other

        async def start(self) -> None:
            began[self.me].set()
            await began[self.other].wait()  # a serial walk would wait here forever

    class Pair(containers.DeclarativeContainer):
        left = providers.Singleton(Waits, "left", "right")
        right = providers.Singleton(Waits, "right", "left")

    app = App(Pair, settings=settings(hook_timeout=5, start_timeout=5), sinks=[])
    await asyncio.wait_for(app.start(), timeout=5)
    await app.stop()


async def test_sync_and_async_hooks_and_explicit_lifecycle_hooks() -> None:
    log = Log()

    def make_server(lifecycle: Lifecycle, db: SyncService) -> str:
        async def listen() -> None:
            log.add("start", "listen")

        lifecycle.append(Hook(on_start=listen, on_stop=lambda: log.add("stop", "listen")))
        lifecycle.append(Hook(on_stop=lambda: log.add("stop", "only-stop"), name="flush"))
        return "server"

    class Explicit(containers.DeclarativeContainer):
        lifecycle = LifecycleProvider()
        db = providers.Singleton(SyncService, "db", providers.Object(log))
        server = providers.Singleton(make_server, lifecycle, db)

    app = App(Explicit, settings=settings(), sinks=[])
    app.lifecycle.append(Hook(on_start=lambda: log.add("start", "app-level"), name="app-level"))
    await app.start()
    assert log.phase("start") == ["db", "listen", "app-level"]
    with pytest.raises(RuntimeError, match="before the app starts"):
        app.lifecycle.append(Hook(on_start=lambda: None))
    await app.stop()
    assert log.phase("stop") == ["only-stop", "listen", "db"]


async def test_stop_is_idempotent_and_runs_each_hook_once() -> None:
    log = Log()
    app = App(diamond(log), settings=settings(), sinks=[])
    await app.start()
    await asyncio.gather(app.stop(), app.stop())
    await app.stop()
    assert all(log.count("stop", n) == 1 for n in "abcd")


async def test_stop_before_start_is_harmless_and_start_runs_once() -> None:
    app = App(diamond(Log()), settings=settings(), sinks=[])
    await app.stop()
    await app.start()
    with pytest.raises(RuntimeError, match="starts once"):
        await app.start()
    await app.stop()


async def test_factory_is_built_once_and_shared_with_its_dependents() -> None:
    log = Log()

    class Shared(containers.DeclarativeContainer):
        conn = providers.Factory(AsyncService, "conn", providers.Object(log))
        left = providers.Singleton(AsyncService, "left", providers.Object(log), conn)
        right = providers.Singleton(AsyncService, "right", providers.Object(log), conn)

    container = Shared()
    app = App(container, settings=settings(), sinks=[])
    await app.start()
    assert container.left().deps[0] is container.right().deps[0]
    assert log.count("start", "conn") == 1
    assert container.conn() is not container.left().deps[0]  # a factory again after the build
    await app.stop()


async def test_factories_nothing_needs_are_blueprints_and_not_built() -> None:
    made: list[str] = []

    def needs_argument(value: str) -> str:
        made.append(value)
        return value

    class Blueprints(containers.DeclarativeContainer):
        per_request = providers.Factory(needs_argument)
        service = providers.Singleton(SyncService, "s", providers.Object(Log()))

    app = App(Blueprints, settings=settings(), sinks=[])
    await app.start()
    await app.stop()
    assert made == []


async def test_invoke_roots_build_only_what_they_need() -> None:
    log = Log()
    container = diamond(log)()
    app = App(container, invoke=[container.b], settings=settings(), sinks=[])
    assert app.nodes == ["Diamond.log_", "Diamond.a", "Diamond.b"]
    await app.start()
    await app.stop()
    assert log.phase("start") == ["a", "b"]
    by_name = App(diamond(log), invoke=["c"], settings=settings(), sinks=[])
    assert by_name.nodes == ["Diamond.log_", "Diamond.a", "Diamond.c"]
    klass = diamond(log)
    by_class_provider = App(klass, invoke=[klass.c], settings=settings(), sinks=[])
    assert by_class_provider.nodes == by_name.nodes


async def test_unknown_root_and_non_container_are_clear_errors() -> None:
    with pytest.raises(LookupError, match="is not a provider of Diamond"):
        App(diamond(Log()), invoke=["nope"], sinks=[])
    with pytest.raises(TypeError, match="needs a dependency-injector container"):
        App(42, sinks=[])


async def test_resource_is_shut_down_on_stop() -> None:
    log = Log()

    def resource() -> object:
        log.add("start", "resource")
        yield "handle"
        log.add("stop", "resource")

    class WithResource(containers.DeclarativeContainer):
        res = providers.Resource(resource)
        user = providers.Singleton(SyncService, "user", providers.Object(log), res)

    app = App(WithResource, settings=settings(), sinks=[])
    await app.start()
    await app.stop()
    assert log.entries == [
        ("start", "resource"),
        ("start", "user"),
        ("stop", "user"),
        ("stop", "resource"),
    ]


async def test_ready_waits_for_start() -> None:
    app = App(diamond(Log()), settings=settings(), sinks=[])
    starting = asyncio.ensure_future(app.start())
    await app.ready()
    assert app.state == "started"
    await starting
    await app.stop()


async def test_nested_containers_are_modules() -> None:
    log = Log()

    class Storage(containers.DeclarativeContainer):
        log_ = providers.Dependency(instance_of=Log)
        pool = providers.Singleton(AsyncService, "pool", log_)

    class Root(containers.DeclarativeContainer):
        log_ = providers.Object(log)
        db = providers.Container(Storage, log_=log_)
        api = providers.Singleton(AsyncService, "api", log_, db.pool)

    app = App(Root, settings=settings(), sinks=[])
    assert app.start_order() == [["Root.log_"], ["Root.db.log_"], ["Root.db.pool"], ["Root.api"]]
    await app.start()
    await app.stop()
    assert log.phase("start") == ["pool", "api"]
