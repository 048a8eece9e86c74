"""Issue 17: the host's ``/readyz`` follows its shared store: not ready while Redis is down,
ready again once it is back; ``/healthz`` stays 200 (the host itself is alive)."""

from __future__ import annotations

import asyncio
import signal

import pyqwest

from plugin_di.host.server import Host
from plugin_di.host.shared.config import StoreConfig
from tests.multihost.support.redis import RedisServer


async def probe(client: pyqwest.Client, url: str) -> tuple[int, bytes]:
    response = await client.get(url)
    return response.status, bytes(response.content)


async def until_status(client: pyqwest.Client, url: str, status: int, limit: float) -> None:
    """Poll ``url`` (bounded in time) until it answers ``status``: the store's state
    reaches the host through its connection, with no event to wait on."""
    async with asyncio.timeout(limit):
        for _ in range(10_000):
            if (await probe(client, url))[0] == status:
                return
            await asyncio.sleep(0.02)


async def test_readyz_follows_the_shared_store(
    redis_server: RedisServer, store: StoreConfig, http: pyqwest.Client
) -> None:
    host = Host(bind="127.0.0.1:0", store=store)
    await host.start()
    try:
        readyz = host.url + "/readyz"
        assert await probe(http, readyz) == (200, b"ready")
        redis_server.stop(signal.SIGKILL)
        await until_status(http, readyz, 503, limit=15)
        assert await probe(http, host.url + "/healthz") == (200, b"ok")
        redis_server.start()
        await until_status(http, readyz, 200, limit=20)
    finally:
        await host.stop()
