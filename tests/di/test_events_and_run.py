"""Events and sinks, Shutdowner and run_async, the testing helpers and pytest fixtures."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from dependency_injector import containers, providers

from plugin_di.di.app import App
from plugin_di.di.errors import StartError
from plugin_di.di.events import (
    Emitter,
    EmitterProvider,
    Event,
    HookExecuted,
    HookExecuting,
    LoggingSink,
    ProviderBuilt,
    RolledBack,
    RollingBack,
    Started,
    Stopped,
)
from plugin_di.di.shutdown import Shutdowner, ShutdownerProvider
from plugin_di.testing import Overrides, override, started
from tests.di.support import AsyncService, Events, FailingStart, Log, SyncService, settings


class Tiny(containers.DeclarativeContainer):
    log_ = providers.Object(Log())
    db = providers.Singleton(AsyncService, "db", log_)
    api = providers.Singleton(SyncService, "api", log_, db)


async def test_events_describe_build_hooks_start_and_stop() -> None:
    sink = Events()
    app = App(Tiny, settings=settings(), sinks=[sink])
    await app.start()
    await app.stop()
    built = [e.provider for e in sink.of(ProviderBuilt)]  # type: ignore[attr-defined]
    assert built == ["Tiny.log_", "Tiny.db", "Tiny.api"]
    executed = sink.of(HookExecuted)
    assert [(e.phase, e.provider) for e in executed] == [  # type: ignore[attr-defined]
        ("start", "Tiny.db"),
        ("start", "Tiny.api"),
        ("stop", "Tiny.api"),
        ("stop", "Tiny.db"),
    ]
    assert all(e.duration >= 0 and e.error is None for e in executed)  # type: ignore[attr-defined]
    assert len(sink.of(HookExecuting)) == 4
    names = sink.names()
    assert names.index("Started") < names.index("Stopping") < names.index("Stopped")
    assert sink.of(Started)[0].hooks == 2  # type: ignore[attr-defined]
    assert sink.of(Stopped)[0].error is None  # type: ignore[attr-defined]


async def test_failed_start_emits_rolling_back_and_rolled_back() -> None:
    sink = Events()

    class Fails(containers.DeclarativeContainer):
        log_ = providers.Object(Log())
        ok = providers.Singleton(AsyncService, "ok", log_)
        bad = providers.Singleton(FailingStart, "bad", log_, ok)

    with pytest.raises(StartError):
        await App(Fails, settings=settings(), sinks=[sink]).start()
    failed = [e for e in sink.of(HookExecuted) if e.error is not None]  # type: ignore[attr-defined]
    assert [e.provider for e in failed] == ["Fails.bad"]  # type: ignore[attr-defined]
    assert "RuntimeError: bad cannot start" in str(sink.of(RollingBack)[0].error)  # type: ignore[attr-defined]
    assert sink.of(RolledBack)[0].stopped == 1  # type: ignore[attr-defined]


async def test_logging_sink_writes_text_and_json(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="plugin_di")
    app = App(Tiny, settings=settings(), sinks=[LoggingSink("json"), LoggingSink("text", "INFO")])
    await app.start()
    await app.stop()
    lines = [r.getMessage() for r in caplog.records]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    started_event = next(r for r in records if r["event"] == "Started")
    assert started_event["app"] == "Tiny"
    assert started_event["hooks"] == 2
    assert any(r["event"] == "HookExecuted" and r["provider"] == "Tiny.db" for r in records)
    text = [line for line in lines if not line.startswith("{")]
    assert text[0].startswith("started Tiny: 2 hooks in ")
    assert all("hook" not in line.split(":")[0] for line in text)  # INFO: no per-hook lines


async def test_a_failing_sink_never_breaks_the_app(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("sink down")

    app = App(Tiny, settings=settings(), sinks=[broken])
    await app.start()
    await app.stop()
    assert "event sink" in caplog.text


async def test_other_parts_emit_their_own_events_through_the_injected_emitter() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class PluginRestarted(Event):
        plugin: str

    class Supervisor:
        def __init__(self, events: Emitter) -> None:
            self.events = events

        def start(self) -> None:
            self.events.emit(PluginRestarted("kv"))

    class Supervised(containers.DeclarativeContainer):
        events = EmitterProvider()
        supervisor = providers.Singleton(Supervisor, events)

    sink = Events()
    app = App(Supervised, settings=settings(), sinks=[sink])
    await app.start()
    await app.stop()
    assert sink.of(PluginRestarted) == [PluginRestarted("kv")]
    assert PluginRestarted("kv").message() == "PluginRestarted plugin=kv"


async def test_run_async_returns_the_shutdown_exit_code() -> None:
    class Job:
        def __init__(self, shutdowner: Shutdowner) -> None:
            self.shutdowner = shutdowner

        async def start(self) -> None:
            asyncio.get_running_loop().call_soon(self.shutdowner.shutdown, 3)

    class Batch(containers.DeclarativeContainer):
        shutdowner = ShutdownerProvider()
        job = providers.Singleton(Job, shutdowner)

    app = App(Batch, settings=settings(), sinks=[])
    assert await app.run_async() == 3
    assert app.state == "stopped"


class _LoopJob:
    """Records the type of the loop it started on, then stops the app."""

    loop_type: type | None = None

    def __init__(self, shutdowner: Shutdowner) -> None:
        self.shutdowner = shutdowner

    async def start(self) -> None:
        type(self).loop_type = type(asyncio.get_running_loop())
        asyncio.get_running_loop().call_soon(self.shutdowner.shutdown, 0)


class _LoopBatch(containers.DeclarativeContainer):
    shutdowner = ShutdownerProvider()
    job = providers.Singleton(_LoopJob, shutdowner)


@pytest.mark.parametrize(("kind", "uv"), [("auto", True), ("asyncio", False)])
def test_run_uses_the_configured_event_loop(kind: str, uv: bool) -> None:
    import uvloop

    _LoopJob.loop_type = None
    app = App(_LoopBatch, settings=settings(event_loop=kind), sinks=[])
    assert app.run() == 0
    assert _LoopJob.loop_type is not None
    assert issubclass(_LoopJob.loop_type, uvloop.Loop) is uv


async def test_run_async_returns_1_and_reports_a_failed_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Fails(containers.DeclarativeContainer):
        bad = providers.Singleton(FailingStart, "bad", providers.Object(Log()))

    assert await App(Fails, settings=settings(), sinks=[]).run_async() == 1
    assert "start failed: start hook 'FailingStart.start' of Fails.bad" in capsys.readouterr().err


async def test_override_restores_the_original_providers() -> None:
    log = Log()
    fake = SyncService("fake-db", log)
    container = Tiny()
    with override(container, db=fake):
        app = App(container, settings=settings(), sinks=[])
        await app.start()
        assert container.api().deps == (fake,)
        await app.stop()
    assert isinstance(Tiny().db(), AsyncService)
    assert container.db.last_overriding is None
    assert log.phase("start") == ["fake-db"]


async def test_override_by_provider_and_by_dotted_name() -> None:
    class Inner(containers.DeclarativeContainer):
        value = providers.Object("real")

    class Outer(containers.DeclarativeContainer):
        inner = providers.Container(Inner)

    container = Outer()
    with override(container, {"inner.value": "fake"}):
        assert container.inner.value() == "fake"
    assert container.inner.value() == "real"
    with override(container.inner.value, providers.Object("other")):
        assert container.inner.value() == "other"
    assert container.inner.value() == "real"
    with (
        pytest.raises(LookupError, match=r"no provider named 'inner\.nope'"),
        override(container, {"inner.nope": 1}),
    ):
        pass


async def test_started_starts_and_stops_and_fails_loudly() -> None:
    async with started(Tiny, settings=settings(), sinks=[]) as app:
        assert app.state == "started"
    assert app.state == "stopped"

    class Fails(containers.DeclarativeContainer):
        bad = providers.Singleton(FailingStart, "bad", providers.Object(Log()))

    with pytest.raises(StartError, match="cannot start"):
        async with started(Fails, settings=settings(), sinks=[]):
            pytest.fail("the body must not run")


def test_di_override_fixture_restores_after_the_test(di_override: Overrides) -> None:
    container = Tiny()
    di_override(container, db="fake")
    assert container.db() == "fake"
    di_override.restore()
    assert isinstance(container.db(), AsyncService)


async def test_di_started_fixture(di_started: Any) -> None:
    app = await di_started(Tiny, settings=settings(), sinks=[])
    assert app.state == "started"
