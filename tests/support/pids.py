"""Processes by pid: whether one is alive, waiting until some are gone, killing what is left."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest


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
