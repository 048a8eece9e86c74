"""Bounded waits on the test's own loop: until a condition holds, or a FakeClock's sleepers wake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from plugin_di.clock import FakeClock


async def until(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    """Wait (bounded) until ``predicate()`` holds; fail the test otherwise."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def tick_until(clock: FakeClock, done: Callable[[], bool], step: float = 1.0) -> None:
    """Advance ``clock`` by ``step`` whenever something sleeps on it, until ``done()`` (bounded)."""
    for _ in range(200):
        await until(lambda: done() or clock.sleepers > 0)
        if done():
            return
        clock.advance(step)
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached after 200 clock steps")
