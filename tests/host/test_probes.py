"""Issue 17: the host answers ``/healthz`` and ``/readyz`` as its plugins do.

A real host on loopback, asked over HTTP/1.1 and h2c without any credential; readiness
follows the host (not ready once it stops serving). On a shared store it follows the store
too: tests/multihost/test_probes_store.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pyqwest
import pytest

from plugin_di.host.server import Host
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
