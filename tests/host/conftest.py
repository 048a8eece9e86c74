"""Fixtures: a Host served on 127.0.0.1:0 with a FakeClock."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# the examples package lives at the repository root
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from host_support import ADMISSION

from plugin_di.clock import FakeClock
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def host(clock: FakeClock) -> AsyncIterator[Host]:
    h = Host(
        HostConfig(sweep_interval=1e9), clock=clock, admission=ADMISSION
    )  # sweeping tested on its own
    await h.start("127.0.0.1:0")
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def fast_host(clock: FakeClock) -> AsyncIterator[Host]:
    host = Host(HostConfig(sweep_interval=1e9), clock=clock, fast_uds=True, admission=ADMISSION)
    await host.start("127.0.0.1:0")
    try:
        yield host
    finally:
        await host.stop()
