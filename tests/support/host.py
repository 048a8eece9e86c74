"""Test helpers: a recording logger plugin, in-process plugin servers on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyqwest
from connectrpc.request import RequestContext

from examples.kv.plugin import make_plugin as make_kv_plugin
from plugin_di.gen.capability.logger.v1 import logger_pb2
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerASGIApplication, LoggerClient
from plugin_di.host.admission import AdmissionPolicy, AllowEntry
from plugin_di.plugin.definition import Dependency, Plugin, Service
from plugin_di.plugin.host_client import HostClient
from plugin_di.plugin.server import PluginServer
from plugin_di.rpc.serving import bind_socket

NO_GZIP: dict[str, Any] = {"send_compression": None, "accept_compression": []}

ADMISSION = AdmissionPolicy(
    allow=(
        AllowEntry("app"),  # consumers: admitted, provide nothing
        AllowEntry("observer"),
        AllowEntry("other"),
        AllowEntry("kv", frozenset({"kv"})),
        AllowEntry("logger", frozenset({"logger"})),
        AllowEntry("cache", frozenset({"cache"})),
    )
)
"""The self ids the host tests join as, admitted by the allow-list (join tokens, launch
secrets and certificates are tested in test_admission*.py)."""


@dataclass
class RecordingLogger:
    """A Logger capability that remembers what it was told and what headers it saw."""

    lines: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    _grew: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_lines(self, count: int, abort: asyncio.Event | None = None) -> None:
        """Wait until ``count`` lines were logged (or ``abort`` is set)."""
        while len(self.lines) < count and not (abort and abort.is_set()):
            self._grew = asyncio.Event()
            waits = [asyncio.create_task(self._grew.wait())]
            if abort is not None:
                waits.append(asyncio.create_task(abort.wait()))
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()

    async def log(
        self,
        request: logger_pb2.LogRequest,
        ctx: RequestContext[logger_pb2.LogRequest, logger_pb2.LogResponse],
    ) -> logger_pb2.LogResponse:
        self.headers.append({k: v for k, v in ctx.request_headers.items()})
        if self.gate is not None:
            await self.gate.wait()
        self.lines.append(f"[{request.level}] {request.message}")
        self._grew.set()
        ctx.response_headers["x-served-by"] = "logger"
        return logger_pb2.LogResponse()


def logger_plugin(impl: RecordingLogger | None = None, name: str = "logger") -> Plugin:
    return Plugin(
        name=name,
        services=[Service(LoggerASGIApplication, LoggerClient, impl=impl or RecordingLogger())],
    )


def cache_plugin(min_version: str = "") -> Plugin:
    """A plugin that requires the logger (serves KV as its own service)."""
    kv = make_kv_plugin()
    return Plugin(
        name="cache",
        services=[
            Service(
                kv.services[0].application,
                kv.services[0].client,
                impl=kv.services[0].impl,
                type="cache",
            )
        ],
        requires=[Dependency("logger", min_version)],
    )


@contextlib.asynccontextmanager
async def served(
    plugin: Plugin, grace: float = 1.0, address: str = "127.0.0.1:0"
) -> AsyncIterator[tuple[PluginServer, str]]:
    """Serve ``plugin`` on ``address`` in this loop; yield (server, url)."""
    server = PluginServer(plugin, grace_period=grace)
    bound = bind_socket(address)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(bound, ready=ready.set))
    async with asyncio.timeout(5):
        await ready.wait()
    try:
        yield server, bound.url
    finally:
        server.request_stop(0.5, "test over")
        async with asyncio.timeout(10):
            await task


@contextlib.asynccontextmanager
async def h2_client() -> AsyncIterator[pyqwest.Client]:
    transport = pyqwest.HTTPTransport(http_version=pyqwest.HTTPVersion.HTTP2)
    try:
        yield pyqwest.Client(transport)
    finally:
        await transport.aclose()
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def managed(
    plugin: Plugin, http: pyqwest.Client, address: str = "127.0.0.1:0"
) -> AsyncIterator[tuple[PluginServer, str, asyncio.Task[Any]]]:
    """Serve ``plugin`` and follow the identity a host hands it (platform-managed plugin)."""
    from plugin_di.plugin.health import HealthState
    from plugin_di.plugin.host_session import follow_identity

    async with served(plugin, address=address) as (server, url):

        def mirror(state: int, reason: str, missing: Any) -> None:
            server.health.report(HealthState(state), reason, missing)

        task = asyncio.create_task(
            follow_identity(server.identity, plugin, http_client=http, on_report=mirror)
        )
        try:
            yield server, url, task
        finally:
            if task.done() and not task.cancelled() and task.exception() is None:
                await task.result().stop()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@contextlib.asynccontextmanager
async def served_fast(plugin: Plugin) -> AsyncIterator[str]:
    """Serve ``plugin`` with uvicorn on a Unix socket in this loop; yield its unix:// URL."""
    with tempfile.TemporaryDirectory() as tmp:
        server = PluginServer(plugin, grace_period=1.0)
        bound = bind_socket("unix:" + str(Path(tmp) / "p.sock"))
        ready = asyncio.Event()
        task = asyncio.create_task(server.run(bound, ready=ready.set))
        async with asyncio.timeout(5):
            await ready.wait()
        try:
            yield bound.url
        finally:
            server.request_stop(0.5, "test over")
            async with asyncio.timeout(10):
                await task


async def join_host(host_url: str, plugin: Plugin, kind: str, url: str) -> HostClient:
    """A HostClient that joined ``host_url`` as ``plugin`` and registered ``url``."""
    path = "/" + plugin.services[0].path.strip("/") + "/"
    provider = HostClient(host_url)
    await provider.handshake(kind, plugins=[plugin])
    await provider.register(kind, "1.0.0", path, {"base_url": url})
    return provider
