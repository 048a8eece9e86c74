"""``App.run``: start, wait for a signal or a shutdown request, stop, return the exit code."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any, Protocol

from plugin_di.di.errors import LifecycleError, StopError, report
from plugin_di.di.events import Event, ShutdownRequested
from plugin_di.di.shutdown import Shutdowner
from plugin_di.logs import JSONFormatter


class Runnable(Protocol):
    """What `run_app` needs of an App."""

    shutdowner: Shutdowner

    async def start(self) -> None: ...
    async def stop(self, reason: str = ...) -> None: ...
    def emit(self, event: Event) -> None: ...
    def interrupt(self, reason: str) -> None: ...


SIGINT_EXIT = 128 + signal.SIGINT
"""The exit code after SIGINT (130), as a shell reports a process Ctrl-C ended; SIGTERM
exits 0 after a clean stop (a stop asked for is a success, as systemd counts it)."""


def signal_exit_code(name: str) -> int:
    """The exit code of a process stopped by the signal ``name`` (``SIGINT``: 130, else 0)."""
    return SIGINT_EXIT if name == signal.SIGINT.name else 0


async def run_app(app: Runnable) -> int:
    loop = asyncio.get_running_loop()
    signalled: asyncio.Future[str] = loop.create_future()
    installed = _install_signals(loop, signalled)
    try:
        start = asyncio.ensure_future(app.start())
        first: set[asyncio.Future[Any]] = {start, signalled}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        # A signal and the end of start can land in the same pass of the loop: then both
        # are done here, and the start (which finished) is stopped as after any signal.
        interrupted = signalled.done() and not start.done()
        if interrupted:  # start fails: exit 1 (130 for SIGINT)
            app.emit(ShutdownRequested(signal_exit_code(signalled.result()) or 1,
                                       signalled.result()))  # fmt: skip
            app.interrupt(signalled.result())
        try:
            await start
        except LifecycleError as exc:
            _tell(report(exc))
            return (signal_exit_code(signalled.result()) or 1) if interrupted else 1
        if signalled.done():
            code, reason = signal_exit_code(signalled.result()), signalled.result()
        else:
            requested = asyncio.ensure_future(app.shutdowner.wait())
            either: set[asyncio.Future[Any]] = {requested, signalled}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if requested.done():
                code, reason = requested.result(), app.shutdowner.reason
            else:
                requested.cancel()
                code, reason = signal_exit_code(signalled.result()), signalled.result()
        if not interrupted:
            app.emit(ShutdownRequested(code, reason))
        try:
            await app.stop(reason)
        except StopError as exc:
            _tell(report(exc))
            return code or 1
        return code
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _tell(text: str) -> None:
    """Print a failure report on stderr; when the logs are JSON lines (``plugin-di run`` with
    ``PLUGIN_DI_LOG_FORMAT=json``), log it instead, so stderr stays JSON."""
    if any(isinstance(h.formatter, JSONFormatter) for h in logging.getLogger().handlers):
        logging.getLogger("plugin_di").error(text)
    else:
        print(f"plugin-di: {text}", file=sys.stderr)


def _install_signals(
    loop: asyncio.AbstractEventLoop, signalled: asyncio.Future[str]
) -> list[signal.Signals]:
    """SIGINT and SIGTERM resolve ``signalled`` once; a second signal gets the default action."""
    installed: list[signal.Signals] = []

    def deliver(sig: signal.Signals) -> None:
        if not signalled.done():
            signalled.set_result(sig.name)
        for s in installed:
            loop.remove_signal_handler(s)
        installed.clear()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, deliver, sig)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or no signal support on this platform
        installed.append(sig)
    return installed
