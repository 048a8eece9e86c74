"""The fx_managed application: ``examples.fx_managed.app:app``.

* ``logger``: in memory (direct dispatch);
* ``platform``: the host platform (`examples.fx_managed.platform.HostPlatform`):
  a `Host` on loopback, with the in-memory logger added to it as the provider
  of ``logger`` (no socket between them);
* ``kv``: a child process (``python -m examples.kv``) that joins the host; set
  ``FX_KV_PLACEMENT=in-memory`` to run it in memory instead; nothing else changes;
* ``cache``: a child process (``python -m examples.cache``) that self-registers
  with the host, finds the logger through the registry and calls it through the
  host's router;
* ``inventory``: the application service, which sees only typed clients.

Every process plugin gets ``host=platform.provided.host``: it joins that host,
admitted by its launch secret to provide what its definition declares, and the
engine starts the platform before them and stops it after them.

``plugin-di graph|check|run examples.fx_managed.app:app`` work on it;
``python -m examples.fx_managed`` runs it with a few scripted calls.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from dependency_injector import containers, providers

from examples.cache.plugin import plugin as cache_plugin
from examples.fx_managed.platform import HostPlatform
from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin as make_kv
from examples.logger.plugin import make_plugin as make_logger
from plugin_di.di.app import App
from plugin_di.di.events import EmitterProvider
from plugin_di.di.providers import InMemoryPlugin, ProcessPlugin, placed
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.gen.capability.logger.v1.logger_pb2 import LogRequest

ROOT = str(Path(__file__).resolve().parents[2])


class Inventory:
    """Stock counts in kv, hot ones in the cache; every step told to the logger."""

    def __init__(self, kv: KVServiceClient, cache: KVServiceClient, log: LoggerClient) -> None:
        self.kv = kv
        self.cache = cache
        self.log = log

    async def start(self) -> None:
        await self.log.log(LogRequest(level="info", message="inventory ready"))

    async def stop(self) -> None:
        await self.log.log(LogRequest(level="info", message="inventory stopping"))

    async def restock(self, sku: str, count: int) -> None:
        """Record ``count`` units of ``sku``."""
        value = str(count).encode()
        await self.kv.put(kv_pb2.PutRequest(key=f"sku/{sku}", value=value))
        await self.cache.put(kv_pb2.PutRequest(key=f"sku/{sku}", value=value))
        await self.log.log(LogRequest(level="info", message="restocked", fields={"sku": sku}))

    async def count(self, sku: str) -> int:
        """Units of ``sku``: from the cache, else from kv (and then cached)."""
        hit = await self.cache.get(kv_pb2.GetRequest(key=f"sku/{sku}"))
        if hit.found:
            return int(hit.value)
        stored = await self.kv.get(kv_pb2.GetRequest(key=f"sku/{sku}"))
        if stored.found:
            await self.cache.put(kv_pb2.PutRequest(key=f"sku/{sku}", value=stored.value))
        return int(stored.value or b"0")

    async def changes(
        self, watching: asyncio.Event | None = None
    ) -> AsyncIterator[kv_pb2.WatchEvent]:
        """Every change to a stock count, as kv reports it; ``watching`` is set once subscribed."""
        async for event in self.kv.watch(kv_pb2.WatchRequest(prefix="sku/")):
            if event.type == kv_pb2.EVENT_TYPE_UNSPECIFIED:  # kv's "subscribed" marker
                if watching is not None:
                    watching.set()
                continue
            yield event


class FxManaged(containers.DeclarativeContainer):
    """The application's parts; the graph of their arguments is the start order."""

    events = EmitterProvider()
    logger = InMemoryPlugin(make_logger(), events=events)
    platform = providers.Singleton(HostPlatform, logger)
    kv = placed(
        make_kv(),
        os.environ.get("FX_KV_PLACEMENT", "process"),
        module="examples.kv",
        cwd=ROOT,
        host=platform.provided.host,
        events=events,
    )
    cache = ProcessPlugin(
        cache_plugin,
        module="examples.cache",
        cwd=ROOT,
        host=platform.provided.host,
        events=events,
    )
    inventory = providers.Singleton(
        Inventory,
        kv=kv.client(KVServiceClient),
        cache=cache.client(KVServiceClient),
        log=logger.client(LoggerClient),
    )


app = App(FxManaged, name="fx_managed")
