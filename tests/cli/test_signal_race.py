"""Issue 13, defect 6: a signal that lands as start finishes still requests the shutdown.

`App.run` waits for the first of (start finished, signal). When both are done by the time it
looks, it used to take the signal as its reason without emitting `ShutdownRequested` (so
``plugin-di run`` did not log "shutdown requested (SIGINT)"); about 2 runs in 5 of
tests/cli/test_cli.py::test_run_stops_cleanly_on_a_signal[2] hit it. Here the signal is
raised at the moment start finishes, so that asyncio delivers it before `run_app` resumes:
deterministic on asyncio's own loop.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from dependency_injector import containers, providers

from plugin_di.di.app import App
from plugin_di.di.events import Event, ShutdownRequested, Started, Stopped
from plugin_di.settings import Settings


class _Quiet:
    async def start(self) -> None:
        await asyncio.sleep(0)

    async def stop(self) -> None:
        await asyncio.sleep(0)


class _Served(containers.DeclarativeContainer):
    part = providers.Singleton(_Quiet)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_landing_as_start_finishes_requests_the_shutdown(
    sig: signal.Signals,
) -> None:
    assert isinstance(asyncio.get_running_loop(), asyncio.SelectorEventLoop)
    events: list[Event] = []
    app = App(_Served, settings=Settings(), sinks=[events.append])
    start = app.start

    async def start_then_signal() -> None:
        await start()
        # Written to the loop's wakeup fd now; the loop reads it in the same pass that
        # completes this task, so the handler runs before run_app looks at either.
        signal.raise_signal(sig)
        await asyncio.sleep(0)

    app.start = start_then_signal  # type: ignore[method-assign]
    async with asyncio.timeout(10):
        code = await app.run_async()
    expected = 130 if sig == signal.SIGINT else 0
    assert code == expected
    kinds = [type(e) for e in events]
    assert kinds.count(ShutdownRequested) == 1
    requested = next(e for e in events if isinstance(e, ShutdownRequested))
    assert (requested.exit_code, requested.reason) == (expected, sig.name)
    assert kinds.index(Started) < kinds.index(ShutdownRequested) < kinds.index(Stopped)
