"""Reattach: a host restarted on the same store finds its live plugins again.

go-plugin's ReattachConfig lets a new host process take over a running plugin. Here the
store remembers the plugins: a host restarted on it (same address) routes to them at once,
and they keep their identity and registrations. On the in-memory store the restarted host
knows nobody: the plugins notice at their next heartbeat, handshake and register again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.plugin.host_client import HostClient
from tests.multihost.support.hosts import eventually
from tests.multihost.support.processes import Proc, host_proc, kv_proc, routed_put, routes
from tests.multihost.support.redis import RedisServer


async def test_a_host_restarted_on_the_same_store_finds_its_plugins(
    redis_server: RedisServer, tmp_path: Path, procs: list[Proc], http: object
) -> None:
    # The restart (the host's start included, which a loaded machine can stretch to seconds)
    # must stay within the lease: a longer outage ends the plugins' leases, and they join
    # again (the memory-store test below shows that path).
    env = {"PLUGIN_DI_LEASE_TTL": "20"}
    host = host_proc(tmp_path, "host", redis_server.url, env=env)
    procs.append(host)
    plugin = kv_proc(tmp_path, "kv", host.url)
    procs.append(plugin)
    caller = HostClient(host.url, http_client=http)  # type: ignore[arg-type]
    await caller.handshake("app")
    await eventually(lambda: routes(caller), limit=20, what="kv routable")
    provider = await routed_put(caller, "before")

    failures: list[float] = []  # when each failed call started
    stop = asyncio.Event()

    async def load() -> int:
        count = 0
        while not stop.is_set() and count < 5000:
            started = time.monotonic()
            try:
                assert await routed_put(caller, f"k{count}") == provider
            except ConnectError:
                failures.append(started)
            count += 1
            await asyncio.sleep(0.01)
        return count

    loader = asyncio.create_task(load())
    await asyncio.sleep(0.3)
    host.keep_address()
    host.kill()
    window_start = time.monotonic()
    await asyncio.sleep(0.3)
    host.start()  # the same command: the same port, the same store
    window_end = time.monotonic()  # it serves once its replica is loaded
    await asyncio.sleep(1.0)
    stop.set()
    calls = await loader
    assert calls > 50
    assert failures, "the host was down for 0.3 s: some calls must have failed"
    late = [t for t in failures if t > window_end]
    assert not late, f"{len(late)} calls failed after the restart window"
    assert all(t >= window_start - 0.1 for t in failures)
    # the same identity and the same single registration: nothing joined twice
    found = await caller.discover("kv")
    assert found.endpoint.provider_id == provider
    assert found.single_provider
    assert "joining again" not in plugin.log()


async def test_on_the_memory_store_plugins_join_the_restarted_host_again(
    tmp_path: Path, procs: list[Proc], http: object
) -> None:
    host = host_proc(tmp_path, "host", "memory://")
    procs.append(host)
    plugin = kv_proc(tmp_path, "kv", host.url, {"PLUGIN_DI_HEARTBEAT_INTERVAL": "0.3"})
    procs.append(plugin)
    caller = HostClient(host.url, http_client=http)  # type: ignore[arg-type]
    await caller.handshake("app")
    await eventually(lambda: routes(caller), limit=20, what="kv routable")
    first = await routed_put(caller, "before")

    host.keep_address()
    host.kill()
    host.start()  # same port, empty memory
    with pytest.raises(ConnectError) as info:
        await caller.discover("kv")
    assert info.value.code is Code.UNAUTHENTICATED  # the restarted host knows nobody
    await caller.handshake("app")
    await eventually(lambda: routes(caller), limit=15, what="kv joined again")
    found = await caller.discover("kv")
    assert found.single_provider  # registered once, under its new identity
    assert found.endpoint.provider_id != first
    assert "joined the host at " + host.url + " again as " + found.endpoint.provider_id in (
        plugin.log()
    )
