"""A connect-plugin-go plugin cannot heartbeat: the host that admitted it keeps its lease
while it answers health checks; when that host goes, another adopts it; when the plugin
stops, it leaves with its lease. The real Go peer (``GO_PEER_DIR``, default
``../shared/go-peer``), skipped when absent."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from connectrpc.errors import ConnectError

from plugin_di.host.admission import AdmissionPolicy, AllowEntry
from plugin_di.host.shared.config import StoreConfig
from plugin_di.plugin.host_client import HostClient
from tests.multihost.support.hosts import hosts_on
from tests.multihost.support.redis import free_port
from tests.support.host import h2_client

ROOT = Path(__file__).resolve().parents[2]
GO_PEER = Path(os.environ.get("GO_PEER_DIR") or ROOT.parent / "shared" / "go-peer")
GOKVSERVER = GO_PEER / "bin" / "gokvserver"

pytestmark = pytest.mark.skipif(
    not os.access(GOKVSERVER, os.X_OK),
    reason=f"the Go peer is not at {GO_PEER} (set GO_PEER_DIR to its folder)",
)

ADMIT = AdmissionPolicy(allow=(AllowEntry("go-kv", frozenset({"kv"})), AllowEntry("app")))


@contextlib.asynccontextmanager
async def _gokv(host_url: str) -> AsyncIterator[asyncio.subprocess.Process]:
    addr = f"127.0.0.1:{free_port()}"
    go = await asyncio.create_subprocess_exec(
        str(GOKVSERVER), "-addr", addr, "-host-url", host_url, "-self-id", "go-kv",
        "-base-url", f"http://{addr}",
        env={**os.environ, "CONNECTPLUGIN_DISABLE_TLS_WARNING": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert go.stdout is not None
        async with asyncio.timeout(30):
            while not (await go.stdout.readline()).startswith(b"GOKV_REGISTERED"):
                pass
        yield go
    finally:
        if go.returncode is None:
            go.send_signal(signal.SIGKILL)
        await go.wait()


async def _provider(observer: HostClient) -> str | None:
    try:
        return (await observer.discover("kv")).endpoint.provider_id
    except ConnectError:
        return None


async def _watch_for(observer: HostClient, seconds: float) -> set[str | None]:
    """The kv providers seen through ``observer`` over ``seconds`` (calling keeps its lease)."""
    seen = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(await _provider(observer))
        await asyncio.sleep(0.1)
    return seen


async def test_the_go_peer_keeps_its_lease_through_health_checks(store: StoreConfig) -> None:
    lease = 2.5
    short = dataclasses.replace(store, lease_ttl=lease)
    async with hosts_on(short, admission=ADMIT) as (a, b), h2_client() as http:
        observer = HostClient(b.url, http_client=http)
        await observer.handshake("app")
        async with _gokv(a.url) as go:
            (provider,) = await _watch_for(observer, 0.2)
            assert provider is not None
            assert provider.startswith("go-kv-")
            # two leases long: a keeps it (it answers a's health checks)
            assert await _watch_for(observer, 2 * lease) == {provider}
            await a.stop()  # a leaves; b, the eldest host left, adopts it
            assert await _watch_for(observer, 2 * lease) == {provider}
            go.send_signal(signal.SIGKILL)
            await go.wait()
            seen = await _watch_for(observer, lease + 3)
        assert None in seen  # it left the registry with its lease
        assert await _provider(observer) is None
