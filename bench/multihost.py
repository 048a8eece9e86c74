"""Several hosts on one Redis: the store's throughput, routing through a second host, failover.

- ``store_register_ops_per_s`` (one at a time) and ``store_register_concurrent_ops_per_s``
  (16 in flight): `ServiceRegistry.register` on the shared store, each waited for until
  Redis took it (`SharedState.flush`);
- ``store_discover_ops_per_s``: `ServiceRegistry.discover` on the shared store (the
  host's replica: no round trip), beside ``memory_discover_ops_per_s``;
- ``routed_p50_single_host_us`` (one host, ``memory://``) and
  ``routed_p50_second_host_us`` (two hosts on Redis: the provider registered on the first,
  the call through the second), and their ratio (target <= 1.2);
- ``failover_routable_ms``: a host killed with SIGKILL under load: from the kill to the
  first call that reaches its plugin through the other host.

Needs ``redis-server`` (``make test`` installs it); without it the keys are None.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench._measure import sequential

ROOT = Path(__file__).resolve().parents[1]
_ALLOW = ["--allow", "kv=kv", "--allow", "app="]
KV_PATH = "/kv.v1.KVService/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Any:
    """A redis-server on 127.0.0.1 (append-only file on, fsync every second), in a temp dir."""
    binary = shutil.which("redis-server")
    assert binary is not None
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
             "--appendonly", "yes", "--save", ""],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(500):
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                time.sleep(0.01)
            yield f"redis://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


@contextlib.asynccontextmanager
async def _child(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """A ``python -m plugin_di ...`` child and its handshake line's URL."""
    from plugin_di.plugin.handshake_line import HandshakeLine

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plugin_di", *args,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        process.url = HandshakeLine.parse(line.decode()).url  # type: ignore[attr-defined]
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def store_ops(url: str, seconds: float) -> dict[str, float]:
    """Register (committed) and discover (replica) throughput on the shared store."""
    from plugin_di.host.registry import ServiceRegistry
    from plugin_di.host.shared import SharedPlatform, StoreConfig
    from plugin_di.host.store import Declaration, PluginRecord
    from plugin_di.host.tracker import HealthTracker

    shared = SharedPlatform(StoreConfig(url=url, prefix="bench"), runtime_token_ttl=3600)
    await shared.start("http://bench")
    try:
        registry = ServiceRegistry(shared.registry_store, HealthTracker(shared.health))
        shared.registry_store.put_plugin(PluginRecord("kv-1", "kv", provides=(Declaration("kv"),)))
        registry.set_allowed_services("kv-1", ["kv"])
        await shared.commit()

        async def register() -> None:
            registry.register("kv-1", "kv", "1.0.0", KV_PATH, {"base_url": "http://x"})
            await shared.commit()

        one = await sequential(register, seconds)
        count, deadline = 0, time.perf_counter() + seconds
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await register()
                count += 1

        await asyncio.gather(*(worker() for _ in range(16)))
        concurrent = count / (time.perf_counter() - start)
        # discover a type with one provider on both stores (kv has thousands by now)
        registry.set_allowed_services("kv-1", ["kv", "logger"])
        registry.register("kv-1", "logger", "1.0.0", KV_PATH, {"base_url": "http://x"})
        await shared.commit()
        discover = _discover_rate(registry, seconds)
        memory = ServiceRegistry()
        memory.store.put_plugin(PluginRecord("kv-1", "kv"))
        memory.set_allowed_services("kv-1", ["logger"])
        memory.register("kv-1", "logger", "1.0.0", KV_PATH)
        checks = _route_checks(shared, registry, seconds)
        return {
            **checks,
            "store_register_ops_per_s": one.rate,
            "store_register_p50_us": one.p50_us,
            "store_register_concurrent_ops_per_s": concurrent,
            "store_discover_ops_per_s": discover,
            "memory_discover_ops_per_s": _discover_rate(memory, seconds),
        }
    finally:
        await shared.stop()


def _route_checks(shared: Any, registry: Any, seconds: float) -> dict[str, float]:
    """ns per `ServiceRouter.route` (credentials, rate limit, registration, health): the
    checks of every routed call, on the shared store's replica and on the memory store."""
    from plugin_di.host.registry import ServiceRegistry
    from plugin_di.host.routepath import parse_route_path
    from plugin_di.host.router import ServiceRouter
    from plugin_di.host.store import PluginRecord
    from plugin_di.host.tokens import TokenStore
    from plugin_di.rpc.interceptors.ratelimit import Rate, TokenBucketLimiter

    rate = Rate(1e9, 10**9)
    memory_registry = ServiceRegistry()
    memory_registry.store.put_plugin(PluginRecord("kv-1", "kv"))
    memory_registry.set_allowed_services("kv-1", ["logger"])
    memory_registry.register("kv-1", "logger", "1.0.0", KV_PATH, {"base_url": "http://x"})
    out = {}
    for name, tokens, reg, limiter in (
        ("memory", TokenStore(), memory_registry, TokenBucketLimiter()),
        ("shared", shared.tokens, registry, shared.limiter),
    ):
        identity = tokens.issue("app")
        router = ServiceRouter(reg, tokens, limiter=limiter, rate=rate)
        path, auth = b"/services/logger/kv-1/kv.v1.KVService/Get", "Bearer " + identity.token
        target = parse_route_path(path)
        router.route(target, identity.runtime_id, auth)
        count, start = 0, time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            for _ in range(1000):
                router.route(parse_route_path(path), identity.runtime_id, auth)
            count += 1000
        out[f"route_check_{name}_ns"] = (time.perf_counter() - start) / count * 1e9
    return out


def _discover_rate(registry: Any, seconds: float) -> float:
    registry.discover("logger")
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            registry.discover("logger")
        count += 1000
    return count / (time.perf_counter() - start)


async def routed_p50(url: str, rounds: int, seconds: float) -> dict[str, float]:
    """Routed Get: one memory:// host, against the second of two hosts on Redis."""
    from examples.kv.gen.kv.v1 import kv_pb2
    from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
    from plugin_di.plugin.host_client import HostClient

    # One caller making calls as fast as it can: no per-caller rate limit (the default, 1,000/s,
    # is below what a routed call reaches on this machine).
    unlimited = {"PLUGIN_DI_RATE_LIMIT_RPS": "1e9", "PLUGIN_DI_RATE_LIMIT_BURST": str(10**9)}
    async with (
        _child("serve", "examples.kv.plugin:plugin") as kv,
        _child("host", "--store", "memory://", *_ALLOW, env=unlimited) as single,
        _child("host", "--store", url, *_ALLOW, env=unlimited) as first,
        _child("host", "--store", url, *_ALLOW, env=unlimited) as second,
    ):
        calls = {}
        clients = []
        for name, register_on, call_through in (
            ("single", single, single),
            ("second", first, second),
        ):
            provider = HostClient(register_on.url)
            await provider.handshake("kv")
            await provider.register("kv", "1.0.0", KV_PATH, {"base_url": kv.url})
            caller = HostClient(call_through.url)
            await caller.handshake("app")
            found = await caller.discover("kv")
            client = caller.routed_client(KVServiceClient, found.endpoint)
            await client.put(kv_pb2.PutRequest(key="k", value=b"v"))
            request = kv_pb2.GetRequest(key="k")
            calls[name] = lambda c=client, r=request: c.get(r)
            clients += [provider, caller]
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for call in calls.values():
            await sequential(call, seconds / 2)  # warm-up
        for _ in range(rounds):
            for name, call in calls.items():
                samples[name].append((await sequential(call, seconds)).p50_us)
        for client in clients:
            await client.close()
    single_p50 = statistics.median(samples["single"])
    second_p50 = statistics.median(samples["second"])
    return {
        "routed_p50_single_host_us": single_p50,
        "routed_p50_second_host_us": second_p50,
        "routed_second_host_ratio": second_p50 / single_p50,
    }


async def failover_ms(url: str) -> float:
    """Kill -9 the host a plugin joined through; ms until a call reaches it through the other."""
    from connectrpc.errors import ConnectError

    from examples.kv.gen.kv.v1 import kv_pb2
    from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
    from plugin_di.plugin.host_client import HostClient

    env = {"PLUGIN_DI_LEASE_TTL": "5"}
    async with (
        _child("host", "--store", url, *_ALLOW, env=env) as a,
        _child("host", "--store", url, *_ALLOW, env=env) as b,
    ):
        plugin_env = {"PLUGIN_DI_HOST_URL": f"{a.url},{b.url}"}
        async with _child("serve", "examples.kv.plugin:plugin", env=plugin_env):
            through_a = HostClient(a.url)
            await through_a.handshake("app")
            through_b = HostClient(b.url, identity=through_a.identity)
            for _ in range(300):
                with contextlib.suppress(ConnectError):
                    found = await through_a.discover("kv")
                    break
                await asyncio.sleep(0.02)
            on_a = through_a.routed_client(KVServiceClient, found.endpoint)
            on_b = through_b.routed_client(KVServiceClient, found.endpoint)
            request = kv_pb2.PutRequest(key="k", value=b"v")
            for _ in range(20):
                await on_a.put(request)
            killed = time.perf_counter()
            a.send_signal(signal.SIGKILL)
            with contextlib.suppress(ConnectError):
                await on_a.put(request, timeout_ms=1000)  # the caller notices the loss
            for _ in range(500):
                try:
                    await on_b.put(request, timeout_ms=1000)
                    break
                except ConnectError:
                    await asyncio.sleep(0.01)
            elapsed = (time.perf_counter() - killed) * 1000
            await through_a.close()
            await through_b.close()
            return elapsed


def measure(quick: bool) -> dict[str, Any]:
    """Every figure of this module (None when redis-server is not installed)."""
    keys = (
        "store_register_ops_per_s",
        "store_register_p50_us",
        "store_register_concurrent_ops_per_s",
        "store_discover_ops_per_s",
        "memory_discover_ops_per_s",
        "routed_p50_single_host_us",
        "routed_p50_second_host_us",
        "routed_second_host_ratio",
        "failover_routable_ms",
        "route_check_memory_ns",
        "route_check_shared_ns",
    )
    if shutil.which("redis-server") is None:
        print("multi-host figures skipped: redis-server is not installed", file=sys.stderr)
        return dict.fromkeys(keys)
    rounds, seconds = (1, 0.2) if quick else (5, 2.0)
    with redis_server() as server:  # a database per step: no step sees another's plugins
        results: dict[str, Any] = asyncio.run(store_ops(server + "/0", seconds))
        results.update(asyncio.run(routed_p50(server + "/1", rounds, seconds)))
        results["failover_routable_ms"] = asyncio.run(failover_ms(server + "/2"))
    return results


def report(results: dict[str, Any]) -> str:
    """The lines `make bench` prints."""
    if results.get("routed_p50_single_host_us") is None:
        return "multi-host: skipped (no redis-server)"
    return "\n".join(
        [
            f"shared store register (committed):  {results['store_register_ops_per_s']:10,.0f} /s"
            f"  ({results['store_register_concurrent_ops_per_s']:,.0f} /s with 16 in flight)",
            f"shared store discover (replica):    {results['store_discover_ops_per_s']:10,.0f} /s"
            f"  (memory store {results['memory_discover_ops_per_s']:,.0f} /s)",
            f"routed p50, one host (memory://):   {results['routed_p50_single_host_us']:10.0f} µs",
            f"routed p50, through a second host:  {results['routed_p50_second_host_us']:10.0f} µs"
            f"  ({results['routed_second_host_ratio']:.2f}x, target <= 1.2x)",
            f"host killed: routable again in      {results['failover_routable_ms']:10.0f} ms",
            f"route checks per call, memory store:{results['route_check_memory_ns']:10.0f} ns"
            f"  (shared store replica {results['route_check_shared_ns']:.0f} ns)",
        ]
    )


if __name__ == "__main__":
    outcome = measure("--quick" in sys.argv)
    print(report(outcome))
