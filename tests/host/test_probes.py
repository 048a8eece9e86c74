"""Issue 17: the host answers ``/healthz`` and ``/readyz`` as its plugins do.

A real host on loopback, asked over HTTP/1.1 and h2c without any credential; readiness
follows the host (not ready once it stops serving) and, on a shared store, the store
(not ready while Redis is down, ready again once it is back).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pyqwest
import pytest

from plugin_di.host.server import Host
from plugin_di.host.shared.config import StoreConfig
from tests.multihost.support.redis import RedisServer
from tests.support.processes import http_client


async def probe(client: pyqwest.Client, url: str) -> tuple[int, bytes]:
    response = await client.get(url)
    return response.status, bytes(response.content)


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    host = Host(bind="127.0.0.1:0")
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


@pytest.mark.parametrize("version", ["h1", "h2"])
async def test_the_host_answers_healthz_and_readyz_without_credentials(
    host: Host, version: str
) -> None:
    async with http_client(version) as client:
        assert await probe(client, host.url + "/healthz") == (200, b"ok")
        assert await probe(client, host.url + "/readyz") == (200, b"ready")
        assert (await probe(client, host.url + "/readyz/more"))[0] == 404
        host.health.shutdown()  # what stop() does first: no longer ready, still alive
        assert await probe(client, host.url + "/readyz") == (503, b"not ready")
        assert await probe(client, host.url + "/healthz") == (200, b"ok")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    from tests.multihost.support.redis import need_redis_server

    need_redis_server()
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


async def until_status(client: pyqwest.Client, url: str, status: int, limit: float) -> None:
    """Poll ``url`` (bounded in time) until it answers ``status``: the store's state
    reaches the host through its connection, with no event to wait on."""
    async with asyncio.timeout(limit):
        for _ in range(10_000):
            if (await probe(client, url))[0] == status:
                return
            await asyncio.sleep(0.02)


async def test_readyz_follows_the_shared_store(redis_server: RedisServer) -> None:
    store = StoreConfig(url=redis_server.url, lease_ttl=3.0, sync_interval=0.02, prefix="probes")
    host = Host(bind="127.0.0.1:0", store=store)
    await host.start()
    try:
        async with http_client("h2") as client:
            readyz = host.url + "/readyz"
            assert await probe(client, readyz) == (200, b"ready")
            redis_server.stop(signal.SIGKILL)
            await until_status(client, readyz, 503, limit=15)
            assert await probe(client, host.url + "/healthz") == (200, b"ok")
            redis_server.start()
            await until_status(client, readyz, 200, limit=20)
    finally:
        await host.stop()
