"""Fixtures: a Host served on 127.0.0.1:0 with a FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from plugin_di.clock import FakeClock
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from tests.support.host import ADMISSION


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
    host = Host(HostConfig(sweep_interval=1e9), clock=clock, local_uds=True, admission=ADMISSION)
    await host.start("127.0.0.1:0")
    try:
        yield host
    finally:
        await host.stop()
