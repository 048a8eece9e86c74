"""``python -m examples.fx_managed``: start the app, make a few calls, stop, check no orphan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from connectrpc.errors import ConnectError

from examples.fx_managed.app import app
from examples.fx_managed.platform import WAIT_SECONDS, HostPlatform
from examples.kv.gen.kv.v1 import kv_pb2
from examples.logger.plugin import StderrLogger
from plugin_di.di.events import Event, HookExecuted
from plugin_di.di.providers import plugin_handles, plugins_health
from plugin_di.launch.process_handle import ProcessHandle


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def short(provider: str) -> str:
    return provider.split(".", 1)[-1]


async def show_platform(platform: HostPlatform, joining: list[str]) -> None:
    """What the host knows: who joined, what they registered, the health they reported."""
    print(f"\n== host platform at {platform.url}")
    async with asyncio.timeout(WAIT_SECONDS):
        for name in joining:  # process plugins join on their own, after their handshake line
            await platform.wait_healthy(name)
    host = platform.host
    managed = set(host.platform.managed())
    print("  registry (who joined, what they registered):")
    for record in host.registry.store.plugins():
        how = "managed, in memory" if record.runtime_id in managed else "self-registered"
        for reg in host.registry.store.registrations_of(record.runtime_id):
            url = host.registry.endpoint(reg).endpoint_url
            service = f"{reg.service_type} {reg.version}"
            print(f"    {record.runtime_id:<18} {how:<19} {service:<14} {url}")
    print("  health reports the host received, in order:")
    for event in platform.health_events:
        print(f"    {event.runtime_id:<18} {event.state:<9} {event.reason}")
    print("  discovery:")
    for record in host.registry.store.plugins():
        for req in record.requires:
            report = host.tracker.get(record.runtime_id)
            watchers = host.registry.watcher_count(req.type)
            print(
                f"    {record.runtime_id} requires {req.type}: {watchers} registry watcher(s) "
                f"on {req.type}; it reports {report.reason if report else 'nothing yet'}"
            )


async def main() -> int:
    hooks: list[HookExecuted] = []

    def record(event: Event) -> None:
        if isinstance(event, HookExecuted):
            hooks.append(event)

    app.events.add_sink(record)

    print("== dependency graph")
    print(app.export("text"))

    await app.start()
    print("\n== started, in this order")
    for e in (h for h in hooks if h.phase == "start"):
        print(f"  {short(e.provider):<14} {e.hook:<28} {e.duration * 1000:8.1f} ms")

    platform = app.container.platform()
    processes = [
        n for n, h in plugin_handles(app.container).items() if isinstance(h, ProcessHandle)
    ]
    await show_platform(platform, processes)

    inventory = app.container.inventory()
    print("\n== calls")
    watched: list[kv_pb2.WatchEvent] = []
    watching, first_change = asyncio.Event(), asyncio.Event()

    async def watch() -> None:
        async for event in inventory.changes(watching):
            watched.append(event)
            first_change.set()

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(watching.wait(), 5)
    await inventory.restock("apple", 12)
    print("  put    sku/apple = 12 (kv and cache)")
    print(f"  get    sku/apple -> {await inventory.count('apple')} (cache hit)")
    await inventory.kv.put(kv_pb2.PutRequest(key="sku/pear", value=b"5"))
    print(f"  get    sku/pear  -> {await inventory.count('pear')} (cache miss, read from kv)")
    await asyncio.wait_for(first_change.wait(), 5)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectError):
        await watcher
    change = watched[0]
    kind = kv_pb2.EventType.Name(change.type)
    print(f"  watch  {kind} {change.key} = {change.value.decode()}")

    logger_impl = app.container.logger().plugin.services[0].impl
    assert isinstance(logger_impl, StderrLogger)
    print("  logger received:")
    for rec in logger_impl.received:
        fields = " ".join(f"{k}={v}" for k, v in sorted(rec.fields.items()))
        print(f"    {rec.message:<18} {fields}")
    logger_url = platform.routed_url(platform.logger_id, "logger")
    routed = [r for r in logger_impl.received if r.fields.get("via") == logger_url]
    print(f"  routed {len(routed)} calls from the cache process through the host to {logger_url}")

    print("\n== health")
    for name, health in (await plugins_health(app.container)).items():
        print(f"  {name:<8} {health}")

    pids = {
        name: h.pid
        for name, h in plugin_handles(app.container).items()
        if isinstance(h, ProcessHandle) and h.pid
    }
    await app.stop()
    print("\n== stopped, in this order")
    for e in (h for h in hooks if h.phase == "stop"):
        print(f"  {short(e.provider):<14} {e.hook:<28} {e.duration * 1000:8.1f} ms")

    left = {name: pid for name, pid in pids.items() if alive(pid)}
    if left:
        print(f"\nplugin processes left running: {left}", file=sys.stderr)
        return 1
    listed = ", ".join(f"{n} (pid {p})" for n, p in pids.items())
    print(f"\nno plugin process left: {listed or 'none were started'}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main()))
