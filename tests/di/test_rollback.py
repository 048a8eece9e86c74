"""Rollback on error and on timeout, stop errors, stop timeouts, hooks that ignore cancellation."""

from __future__ import annotations

import asyncio

import pytest
from dependency_injector import containers, providers

from plugin_di.clock import FakeClock
from plugin_di.di.app import App
from plugin_di.di.errors import HookTimeoutError, StartError, StopError
from tests.di.support import (
    AsyncService,
    Blocking,
    FailingStart,
    FailingStop,
    Log,
    Stubborn,
    SyncService,
    settings,
    until,
)


def failing_diamond(log: Log, failing: type[AsyncService]) -> type[containers.DeclarativeContainer]:
    class Broken(containers.DeclarativeContainer):
        log_ = providers.Object(log)
        a = providers.Singleton(AsyncService, "a", log_)
        b = providers.Singleton(SyncService, "b", log_, a)
        c = providers.Singleton(failing, "c", log_, a)
        d = providers.Singleton(AsyncService, "d", log_, b, c)

    return Broken


async def test_rollback_on_error_stops_every_started_hook_exactly_once() -> None:
    log = Log()
    app = App(failing_diamond(log, FailingStart), settings=settings(), sinks=[])
    with pytest.raises(StartError) as caught:
        await app.start()
    error = caught.value
    assert sorted(log.phase("start")) == ["a", "b"]
    assert sorted(log.phase("stop")) == ["a", "b"]
    assert log.phase("stop")[-1] == "a"  # reverse dependency order
    assert (
        error.reason == "start hook 'FailingStart.start' of Broken.c: RuntimeError: c cannot start"
    )
    assert isinstance(error.exceptions[0], RuntimeError)
    assert error.stopped == 2
    assert "rolled back: 2 hooks stopped, 0 errors" in str(error)
    assert app.state == "failed"
    await app.stop()  # harmless after a failed start
    assert sorted(log.phase("stop")) == ["a", "b"]
    with pytest.raises(StartError):
        await app.ready()


async def test_rollback_carries_every_stop_error() -> None:
    log = Log()

    class Both(containers.DeclarativeContainer):
        log_ = providers.Object(log)
        x = providers.Singleton(FailingStop, "x", log_)
        y = providers.Singleton(FailingStop, "y", log_, x)
        z = providers.Singleton(FailingStart, "z", log_, y)

    with pytest.raises(StartError) as caught:
        await App(Both, settings=settings(), sinks=[]).start()
    error = caught.value
    assert [type(e) for e in error.exceptions] == [RuntimeError, ValueError, ValueError]
    assert [f.node for f in error.stop_errors] == ["Both.y", "Both.x"]
    report = str(error)
    assert "stop hook 'FailingStop.stop' of Both.y: ValueError: y cannot stop" in report
    assert "stop hook 'FailingStop.stop' of Both.x: ValueError: x cannot stop" in report


async def test_rollback_on_hook_timeout_with_a_fake_clock() -> None:
    log = Log()
    clock = FakeClock()

    class Hangs(containers.DeclarativeContainer):
        log_ = providers.Object(log)
        a = providers.Singleton(AsyncService, "a", log_)
        b = providers.Singleton(Blocking, "b", log_, a)

    container = Hangs()
    app = App(container, settings=settings(hook_timeout=5), clock=clock, sinks=[])
    starting = asyncio.ensure_future(app.start())
    await until(lambda: container.b().began.is_set())
    clock.advance(4.9)
    await until(lambda: True, turns=20)
    assert not starting.done()
    clock.advance(0.2)
    with pytest.raises(StartError) as caught:
        await starting
    error = caught.value
    assert isinstance(error.exceptions[0], HookTimeoutError)
    assert (
        "start hook 'Blocking.start' of Hangs.b: timed out (exceeded the hook timeout of 5s)"
        in (str(error))
    )
    assert log.phase("start") == ["a"]
    assert log.phase("stop") == ["a"]


async def test_start_timeout_rolls_back_with_a_fresh_stop_budget() -> None:
    """uber-go/fx#1035: after a start timeout fx runs no stop hook; we must."""
    log = Log()
    clock = FakeClock()
    stopping = asyncio.Event()

    class SlowStop(AsyncService):
        async def stop(self) -> None:
            stopping.set()
            await clock.sleep(6)  # longer than what is left of any start budget
            self.log.add("stop", self.name)

    class Budget(containers.DeclarativeContainer):
        log_ = providers.Object(log)
        a = providers.Singleton(SlowStop, "a", log_)
        b = providers.Singleton(Blocking, "b", log_, a)

    container = Budget()
    config = settings(hook_timeout=100, start_timeout=10, stop_timeout=8)
    app = App(container, settings=config, clock=clock, sinks=[])
    starting = asyncio.ensure_future(app.start())
    await until(lambda: container.b().began.is_set())
    clock.advance(10)
    await until(stopping.is_set)
    clock.advance(6)
    with pytest.raises(StartError) as caught:
        await starting
    assert caught.value.reason == "start timed out after 10s"
    assert "exceeded the start timeout of 10s" in str(caught.value)
    assert log.phase("stop") == ["a"]
    assert caught.value.stop_errors == []


async def test_hook_that_ignores_cancellation_is_reported_as_still_running() -> None:
    log = Log()
    clock = FakeClock()

    class Ignores(containers.DeclarativeContainer):
        log_ = providers.Object(log)
        a = providers.Singleton(AsyncService, "a", log_)
        b = providers.Singleton(Stubborn, "b", log_, a)

    container = Ignores()
    app = App(container, settings=settings(hook_timeout=5), clock=clock, cancel_grace=1, sinks=[])
    starting = asyncio.ensure_future(app.start())
    await until(lambda: container.b().began.is_set())
    clock.advance(5)
    await until(lambda: log.count("ignored-cancel", "b") == 1)
    clock.advance(1)
    with pytest.raises(StartError) as caught:
        await starting
    assert caught.value.still_running == ["start hook 'Stubborn.start' of Ignores.b"]
    assert "still running (ignored cancellation):" in str(caught.value)
    assert log.phase("stop") == ["a"]
    container.b().release.set()
    await until(lambda: not app.background)


async def test_stop_reports_every_error_and_still_stops_the_rest() -> None:
    log = Log()

    class Errors(containers.DeclarativeContainer):
        log_ = providers.Object(log)
        base = providers.Singleton(AsyncService, "base", log_)
        one = providers.Singleton(FailingStop, "one", log_, base)
        two = providers.Singleton(FailingStop, "two", log_, base)

    app = App(Errors, settings=settings(), sinks=[])
    await app.start()
    with pytest.raises(StopError) as caught:
        await app.stop()
    assert sorted(str(e) for e in caught.value.exceptions) == ["one cannot stop", "two cannot stop"]
    assert log.phase("stop")[-1] == "base"
    await app.stop()  # the second call is quiet


async def test_stop_timeout_reports_the_hung_hook_and_the_hooks_it_blocked() -> None:
    log = Log()
    clock = FakeClock()
    hung = asyncio.Event()

    class HangsOnStop(AsyncService):
        async def stop(self) -> None:
            hung.set()
            await asyncio.Event().wait()

    class Stuck(containers.DeclarativeContainer):
        log_ = providers.Object(log)
        base = providers.Singleton(AsyncService, "base", log_)
        top = providers.Singleton(HangsOnStop, "top", log_, base)
        side = providers.Singleton(AsyncService, "side", log_)

    config = settings(stop_timeout=3, hook_timeout=100)
    app = App(Stuck, settings=config, clock=clock, sinks=[])
    await app.start()
    stopping = asyncio.ensure_future(app.stop())
    await until(hung.is_set)
    clock.advance(3)
    with pytest.raises(StopError) as caught:
        await stopping
    report = str(caught.value)
    assert (
        "stop hook 'HangsOnStop.stop' of Stuck.top: timed out (exceeded the stop timeout" in report
    )
    assert "stop hook 'AsyncService.stop' of Stuck.base: LifecycleError: not run" in report
    assert log.phase("stop") == ["side"]


async def test_a_build_failure_starts_nothing_and_shuts_resources_down() -> None:
    log = Log()

    def resource() -> object:
        log.add("start", "resource")
        yield "handle"
        log.add("stop", "resource")

    def explode(handle: str) -> None:
        raise RuntimeError("kaput")

    class Fails(containers.DeclarativeContainer):
        res = providers.Resource(resource)
        boom = providers.Singleton(explode, res)

    with pytest.raises(Exception, match=r"cannot build Fails\.boom"):
        await App(Fails, settings=settings(), sinks=[]).start()
    assert log.entries == [("start", "resource"), ("stop", "resource")]
