"""Issue 17: while a slow hook runs, the log says what is pending (``Waiting`` events).

Time is a `FakeClock`: the test moves it; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from dependency_injector import containers, providers

from plugin_di.clock import FakeClock
from plugin_di.di.app import App
from plugin_di.di.events import Event, LoggingSink, Started, Waiting
from tests.di.support import settings, until


class Slow:
    """A start (or stop) hook that waits until the test releases it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def start(self) -> None:
        await self.release.wait()

    async def stop(self) -> None:
        await self.release.wait()


class Quick:
    def __init__(self, *deps: object) -> None:
        pass

    async def start(self) -> None:
        await asyncio.sleep(0)


class Slowly(containers.DeclarativeContainer):
    db = providers.Singleton(Slow)
    cache = providers.Singleton(Quick)
    api = providers.Singleton(Quick, db, cache)


def waiting(events: list[Event]) -> list[Waiting]:
    return [e for e in events if isinstance(e, Waiting)]


async def test_a_slow_start_hook_is_reported_every_interval() -> None:
    clock = FakeClock()
    events: list[Event] = []
    container = Slowly()
    slow = settings(progress_interval=5, start_timeout=60, hook_timeout=60)
    app = App(container, settings=slow, clock=clock, sinks=[events.append])
    starting = asyncio.ensure_future(app.start())
    await until(lambda: clock.sleepers > 0)
    clock.advance(4.9)
    await until(lambda: True, turns=20)
    assert waiting(events) == []
    clock.advance(0.1)
    await until(lambda: len(waiting(events)) == 1)
    assert waiting(events)[0].pending == (("Slowly.db", 5.0),)
    assert waiting(events)[0].message() == "waiting for: Slowly.db (start, 5.0 s)"
    clock.advance(5)
    await until(lambda: len(waiting(events)) == 2)
    assert waiting(events)[1].message() == "waiting for: Slowly.db (start, 10.0 s)"
    container.db().release.set()
    await starting
    assert isinstance(events[-1], Started)
    clock.advance(50)
    await until(lambda: True, turns=20)
    assert len(waiting(events)) == 2  # nothing pending: no more reports
    await app.stop()


async def test_the_stop_phase_is_reported_and_zero_turns_it_off() -> None:
    clock = FakeClock()
    events: list[Event] = []
    container = Slowly()
    app = App(container, settings=settings(progress_interval=2), clock=clock, sinks=[events.append])
    container.db().release.set()
    await app.start()
    container.db().release.clear()
    stopping = asyncio.ensure_future(app.stop())
    await until(lambda: clock.sleepers > 0)
    clock.advance(2)
    await until(lambda: len(waiting(events)) == 1)
    assert waiting(events)[0].message() == "waiting for: Slowly.db (stop, 2.0 s)"
    container.db().release.set()
    await stopping

    quiet: list[Event] = []
    container = Slowly()
    app = App(container, settings=settings(progress_interval=0), clock=clock, sinks=[quiet.append])
    starting = asyncio.ensure_future(app.start())
    await until(lambda: clock.sleepers > 0)
    clock.advance(9)  # the hook timeout (10 s) has not passed
    await until(lambda: True, turns=20)
    assert waiting(quiet) == []
    container.db().release.set()
    await starting
    await app.stop()


async def test_the_text_log_says_what_is_pending(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plugin_di")
    clock = FakeClock()
    container = Slowly()
    sink = LoggingSink("text", "INFO")
    app = App(container, settings=settings(progress_interval=5), clock=clock, sinks=[sink])
    starting = asyncio.ensure_future(app.start())
    await until(lambda: clock.sleepers > 0)
    clock.advance(5)
    await until(lambda: "waiting for" in caplog.text)
    assert "waiting for: Slowly.db (start, 5.0 s)" in caplog.messages
    container.db().release.set()
    await starting
    await app.stop()
