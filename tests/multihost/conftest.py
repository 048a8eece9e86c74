"""Fixtures: one real redis-server per test module; a fresh key prefix per test."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from plugin_di.host.shared.config import StoreConfig
from tests.multihost.support.processes import Proc
from tests.multihost.support.redis import RedisServer
from tests.support.host import h2_client

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(redis_server: RedisServer, request: pytest.FixtureRequest) -> StoreConfig:
    """A store config on the module's server, under a key prefix of this test's own."""
    return StoreConfig(
        url=redis_server.url,
        lease_ttl=3.0,
        sync_interval=0.02,
        prefix=f"t{next(_prefixes)}-{request.node.name[:40].replace('[', '-').strip(']')}",
    )


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes a test starts; stopped by their pids (last first) when it ends."""
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
async def http() -> AsyncIterator[object]:
    """An HTTP/2 client for the test's own calls."""
    async with h2_client() as client:
        yield client
