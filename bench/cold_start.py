"""Cold start: process spawn to handshake line to first successful call."""

from __future__ import annotations

import asyncio
import time

from dependency_injector import containers

from bench.channels import REQUEST, ROOT, spawned
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin
from plugin_di.rpc.transport import connect_client, http_client


async def one_plugin() -> float:
    """Milliseconds from spawning ``plugin-di serve`` to its first answered ``Get``."""
    start = time.perf_counter()
    async with spawned() as line, http_client(line.url) as http:
        client = connect_client(KVServiceClient, line.url, http)
        await client.get(REQUEST)
        return (time.perf_counter() - start) * 1000


async def eight_plugins() -> float:
    """Milliseconds for the lifecycle engine to start eight KV process plugins and call each."""
    container = containers.DynamicContainer()
    for i in range(8):
        setattr(
            container,
            f"kv{i}",
            ProcessPlugin(make_plugin(), module="examples.kv", cwd=str(ROOT), verify=False),
        )
    app = App(container, name="cold_start_8")
    start = time.perf_counter()
    await app.start()
    try:
        clients = [getattr(container, f"kv{i}").client(KVServiceClient)() for i in range(8)]
        await asyncio.gather(*(c.get(REQUEST) for c in clients))
        return (time.perf_counter() - start) * 1000
    finally:
        await app.stop()
