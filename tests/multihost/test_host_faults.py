"""Faults under load, with real processes: a host killed with SIGKILL, a plugin that stops.

Two `plugin-di host` processes on one redis-server; a KV plugin process joined through the
first (it knows both URLs); a caller that retries on the other host.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from connectrpc.errors import ConnectError

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.plugin.host_client import HostClient
from tests.multihost.support.hosts import eventually
from tests.multihost.support.processes import Proc, host_proc, kv_proc
from tests.multihost.support.redis import RedisServer

LEASE = {"PLUGIN_DI_LEASE_TTL": "5"}


class Caller:
    """One identity, a client per host; each call tries the hosts in order."""

    def __init__(self, clients: list[HostClient]) -> None:
        self.clients = clients
        self.failed_tries = 0
        self.calls = 0

    async def put(self, key: str) -> str:
        """Put through the first host that answers; the URL of the one that did."""
        last: Exception | None = None
        for client in self.clients:
            try:
                found = await client.discover("kv")
                kv = client.routed_client(KVServiceClient, found.endpoint)
                await kv.put(kv_pb2.PutRequest(key=key, value=b"v"), timeout_ms=2000)
                self.calls += 1
                return client.host_url
            except ConnectError as error:
                self.failed_tries += 1
                last = error
        raise AssertionError(f"no host answered: {last}")


async def _caller(a: Proc, b: Proc, http: object) -> Caller:
    first = HostClient(a.url, http_client=http)  # type: ignore[arg-type]
    await first.handshake("app")
    second = HostClient(b.url, http_client=http, identity=first.identity)  # type: ignore[arg-type]
    return Caller([first, second])


async def _registrations(client: HostClient) -> list[str]:
    found = await client.discover("kv")
    return [found.endpoint.provider_id]


async def test_kill_9_a_host_under_load(
    redis_server: RedisServer, tmp_path: Path, procs: list[Proc], http: object
) -> None:
    a = host_proc(tmp_path, "a", redis_server.url, env=LEASE)
    procs.append(a)
    b = host_proc(tmp_path, "b", redis_server.url, env=LEASE)
    procs.append(b)
    plugin = kv_proc(tmp_path, "kv", f"{a.url},{b.url}")
    procs.append(plugin)
    caller = await _caller(a, b, http)
    await eventually(lambda: _joined(caller.clients[1]), limit=20, what="kv registered")
    provider = (await caller.clients[1].discover("kv")).endpoint.provider_id

    async def load(until: float) -> list[str]:
        served = []
        count = 0
        while time.monotonic() < until and count < 2000:
            served.append(await caller.put(f"k{count}"))
            count += 1
            await asyncio.sleep(0.005)
        return served

    before = await load(time.monotonic() + 0.5)
    assert set(before) == {a.url}
    killed_at = time.monotonic()
    a.kill()
    after = await load(time.monotonic() + 1.0)
    assert set(after) == {b.url}  # every call answered, by the other host after a retry
    recovered = caller.failed_tries  # calls that needed the retry
    assert recovered >= 1
    # The registration is not lost: the same provider, reachable through b, and only one.
    found = await caller.clients[1].discover("kv")
    assert found.endpoint.provider_id == provider
    assert found.single_provider
    # The plugin moves its heartbeats to b: its lease outlives the lease TTL after the kill.
    await eventually(lambda: "moving to " + b.url in plugin.log(), limit=10, what="failover")
    while time.monotonic() < killed_at + 6.0:  # past the lease; calling keeps ours alive
        found = await caller.clients[1].discover("kv")
        assert found.endpoint.provider_id == provider
        await asyncio.sleep(0.2)
    assert "joined the host" in plugin.log()


async def _joined(client: HostClient) -> bool:
    try:
        await client.discover("kv")
    except ConnectError:
        return False
    return True


async def test_a_plugin_that_stops_leaves_when_its_lease_ends(
    redis_server: RedisServer, tmp_path: Path, procs: list[Proc], http: object
) -> None:
    lease = 2.0
    env = {"PLUGIN_DI_LEASE_TTL": str(lease)}
    a = host_proc(tmp_path, "a", redis_server.url, env=env)
    procs.append(a)
    b = host_proc(tmp_path, "b", redis_server.url, env=env)
    procs.append(b)
    plugin = kv_proc(tmp_path, "kv", a.url)
    procs.append(plugin)
    observer = HostClient(b.url, http_client=http)  # type: ignore[arg-type]
    await observer.handshake("app")
    await eventually(lambda: _joined(observer), limit=20, what="kv registered")
    watch = observer.watch("kv")
    async with asyncio.timeout(5):
        first = await anext(watch)  # type: ignore[call-overload]
    assert first.state == registry_pb2.SERVICE_STATE_AVAILABLE
    plugin.kill()  # no unregister, no more heartbeats
    stopped = time.monotonic()
    async with asyncio.timeout(lease + 8):  # (a late health report may repeat AVAILABLE)
        for _ in range(10):
            event = await anext(watch)  # type: ignore[call-overload]
            if event.state == registry_pb2.SERVICE_STATE_UNAVAILABLE:
                break
    gone_after = time.monotonic() - stopped
    assert event.state == registry_pb2.SERVICE_STATE_UNAVAILABLE
    # it stayed until its lease ran out (the last heartbeat was at most a third of it ago)
    assert gone_after >= lease / 3, gone_after
    await watch.aclose()  # type: ignore[attr-defined]
