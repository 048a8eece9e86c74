"""The event loop plugin-di's own entry points run on: uvloop when installed, else asyncio's.

`App.run`, ``plugin-di run``, ``plugin-di host`` and plugin processes (``plugin-di serve``)
start their loop here. uvloop (libuv, in C) halves what each socket wakeup costs in
Python, which is most of what a host spends relaying a call. ``PLUGIN_DI_EVENT_LOOP``
(`plugin_di.settings.Settings.event_loop`) picks: ``auto`` (the default: uvloop if it can
be imported), ``uvloop`` (required) or ``asyncio``. Code that runs its own loop
(``asyncio.run(app.run_async())``) keeps whatever loop it chose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["EventLoopKind", "loop_factory", "run"]

EventLoopKind = Literal["auto", "uvloop", "asyncio"]
T = TypeVar("T")


def loop_factory(kind: EventLoopKind = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """A new-loop factory for ``kind``; ``auto`` falls back to asyncio's without uvloop."""
    if kind == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise RuntimeError(
                "PLUGIN_DI_EVENT_LOOP=uvloop, but uvloop is not installed: "
                "pip install uvloop, or set PLUGIN_DI_EVENT_LOOP=auto"
            ) from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], kind: EventLoopKind = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``kind`` names."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
