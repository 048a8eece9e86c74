"""The store restarts (SIGKILL, then the same port and data directory): hosts reconnect by
themselves and lose nothing it persisted (append-only file, fsync on every write)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.plugin.host_client import HostClient
from tests.multihost.support.hosts import eventually
from tests.multihost.support.processes import Proc, host_proc, kv_proc, routed_put, routes
from tests.multihost.support.redis import RedisServer


async def test_hosts_reconnect_and_lose_nothing_when_the_store_restarts(
    redis_server: RedisServer, tmp_path: Path, procs: list[Proc], http: object
) -> None:
    env = {"PLUGIN_DI_LEASE_TTL": "6"}
    a = host_proc(tmp_path, "a", redis_server.url, env=env)
    procs.append(a)
    b = host_proc(tmp_path, "b", redis_server.url, env=env)
    procs.append(b)
    plugin = kv_proc(tmp_path, "kv", f"{a.url},{b.url}")
    procs.append(plugin)
    caller = HostClient(b.url, http_client=http)  # type: ignore[arg-type]
    await caller.handshake("app")
    await eventually(lambda: routes(caller), limit=20, what="kv routable through b")
    provider = (await caller.discover("kv")).endpoint.provider_id

    redis_server.stop(signal.SIGKILL)
    # Reads and routing need no store: the replica answers.
    await routed_put(caller, "during the outage")
    # Writes do: a handshake (a new identity) is refused, UNAVAILABLE, not lost silently.
    with pytest.raises(ConnectError) as info:
        await HostClient(a.url, http_client=http).handshake("app")  # type: ignore[arg-type]
    assert info.value.code is Code.UNAVAILABLE

    redis_server.start()
    restarted = time.monotonic()
    late = HostClient(a.url, http_client=http)  # type: ignore[arg-type]

    async def joins() -> bool:
        try:
            await late.handshake("app")
        except ConnectError:
            return False
        return True

    await eventually(joins, limit=15, what="a writes to the store again")
    # b follows the store again: the identity a just issued is valid on b
    on_b = HostClient(b.url, http_client=http, identity=late.identity)  # type: ignore[arg-type]
    await eventually(lambda: routes(on_b), limit=10, what="b follows the store again")
    # nothing persisted was lost: the same single provider, and its heartbeats keep it
    found = await on_b.discover("kv")
    assert found.endpoint.provider_id == provider
    assert found.single_provider
    await asyncio.sleep(max(0.0, restarted + 7.0 - time.monotonic()))  # past one lease TTL
    with pytest.raises(ConnectError) as info:  # an identity that did not call has ended
        await on_b.discover("kv")
    assert info.value.code is Code.UNAUTHENTICATED
    fresh = HostClient(b.url, http_client=http)  # type: ignore[arg-type]
    await fresh.handshake("app")
    found = await fresh.discover("kv")
    assert found.endpoint.provider_id == provider  # the plugin's heartbeats kept it
    assert "reachable again" in a.log() + b.log()
