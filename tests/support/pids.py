"""Helpers shared by the launcher tests: fake plugin commands and pid checks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plugin_di.clock import FakeClock

FAKE = str(Path(__file__).with_name("fake_plugin.py"))


def fake_command(mode: str) -> list[str]:
    return [sys.executable, FAKE, mode]


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait (bounded) until every pid is gone; the ones still alive."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


@contextlib.contextmanager
def sigkill_host_at_exit(
    host: subprocess.Popen[str], pids: list[int], gone_within: float
) -> Iterator[None]:
    """On leaving the block, SIGKILL ``host`` and assert that every pid in ``pids`` (filled
    in by the block) is gone within ``gone_within`` seconds.

    Whatever the outcome, the host is reaped and the pids still alive are SIGKILLed.
    """
    try:
        yield
        os.kill(host.pid, signal.SIGKILL)
        host.wait(timeout=10)
        assert wait_gone(pids, timeout=gone_within) == []
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(timeout=10)
        for pid in pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def reap_pids() -> Iterator[list[int]]:
    """Pids a test started indirectly; SIGKILLed at teardown if still alive."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


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
