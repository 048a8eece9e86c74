"""Real servers on loopback for adversarial tests: the host and a served KV plugin, by kind.

A `Surface` is what a test attacks: a URL, the listener kind behind it, whether it speaks
HTTP/2 (gRPC needs it), and a valid call to prove it still serves. One server
(`plugin_di.rpc.serving`) serves every listener, HTTP/1.1 and HTTP/2 on the same socket;
``kind`` is where it listens: ``tcp`` (loopback; for the host, its public ``url``) or
``unix`` (a Unix socket; for the host, its local channel). A new listener kind is one more
branch in `serve_host` and `serve_plugin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.plugin import make_plugin
from plugin_di.clock import FakeClock
from plugin_di.gen.connectplugin.v1 import handshake_pb2
from plugin_di.host.admission import AdmissionPolicy, AllowEntry
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from plugin_di.plugin.server import PluginServer
from plugin_di.rpc.asgi import ASGIApp
from plugin_di.rpc.serving import ServeConfig, bind_socket, serve

SERVER_KINDS = ("tcp", "unix")
MAGIC_COOKIE = ("CONNECT_PLUGIN", "d3f40b3c2e1a5f8b9c4d7e6a1b2c3d4e")


@dataclass(frozen=True)
class ValidCall:
    """A call that must succeed on a healthy surface: a unary path and its request bytes."""

    path: str
    request: bytes


@dataclass(frozen=True)
class Surface:
    """A served surface under attack."""

    name: str
    url: str
    kind: str
    h2: bool
    valid: ValidCall


def handshake_request(self_id: str = "adversary") -> bytes:
    """A HandshakeRequest the host accepts (it issues a runtime identity for ``self_id``)."""
    return handshake_pb2.HandshakeRequest(
        core_protocol_version=1,
        app_protocol_version=1,
        magic_cookie_key=MAGIC_COOKIE[0],
        magic_cookie_value=MAGIC_COOKIE[1],
        self_id=self_id,
    ).SerializeToString()


ADMISSION = AdmissionPolicy(
    allow=tuple(
        AllowEntry.parse(entry)
        for entry in ("kv=kv", "adversary=", "app=", "caller=", "expiring=", "fuzzer=", "gone=")
    )
)
"""The self ids these tests join as: only ``kv`` may provide anything (the KV service)."""

HOST_VALID = ValidCall("/connectplugin.v1.HandshakeService/Handshake", handshake_request())
PLUGIN_VALID = ValidCall("/kv.v1.KVService/Get", kv_pb2.GetRequest(key="k").SerializeToString())


@contextlib.asynccontextmanager
async def serve_host(
    kind: str, clock: FakeClock | None = None, **options: object
) -> AsyncIterator[tuple[Host, Surface]]:
    """A host served on loopback, reached on its ``kind`` of listener; ``options`` go to
    `HostConfig` (e.g. rate_limit)."""
    config = HostConfig(sweep_interval=1e9, **options)  # type: ignore[arg-type]
    host = Host(config, admission=ADMISSION, clock=clock or FakeClock(), local_uds=kind == "unix")
    await host.start("127.0.0.1:0")
    try:
        url = host.local_url if kind == "unix" else host.url
        assert url is not None
        yield host, Surface(f"host/{kind}", url, kind, True, HOST_VALID)
    finally:
        await host.stop()


@contextlib.asynccontextmanager
async def serve_plugin(
    kind: str, *, max_message_bytes: int = 4 * 1024 * 1024
) -> AsyncIterator[tuple[PluginServer, Surface]]:
    """The KV example plugin served in this loop on a ``kind`` of listener."""
    with tempfile.TemporaryDirectory() as tmp:
        bound = bind_socket(_address(kind, Path(tmp) / "kv.sock"))
        server = PluginServer(make_plugin(), grace_period=1.0, max_message_bytes=max_message_bytes)
        ready = asyncio.Event()
        task = asyncio.create_task(server.run(bound, ready=ready.set))
        async with asyncio.timeout(10):
            await ready.wait()
        try:
            yield server, Surface(f"plugin/{kind}", bound.url, kind, True, PLUGIN_VALID)
        finally:
            server.request_stop(0.5, "test over")
            async with asyncio.timeout(10):
                await task


@contextlib.asynccontextmanager
async def serve_app(app: ASGIApp, kind: str) -> AsyncIterator[str]:
    """Any ASGI app served in this loop on a ``kind`` of listener; its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        bound = bind_socket(_address(kind, Path(tmp) / "app.sock"))
        url = bound.url
        stop = asyncio.Event()
        ready = asyncio.Event()
        config = ServeConfig(grace_period=0.5)
        task = asyncio.create_task(serve(app, bound, shutdown=stop, ready=ready.set, config=config))
        async with asyncio.timeout(10):
            await ready.wait()
        try:
            yield url
        finally:
            stop.set()
            async with asyncio.timeout(10):
                await task


def _address(kind: str, socket_path: Path) -> str:
    if kind not in SERVER_KINDS:
        raise ValueError(f"unknown listener kind {kind!r}: one of {SERVER_KINDS}")
    return "unix:" + str(socket_path) if kind == "unix" else "127.0.0.1:0"


@dataclass(frozen=True)
class Method:
    """One RPC a surface serves: its path, and whether either side streams."""

    path: str
    client_streaming: bool
    server_streaming: bool

    @property
    def unary(self) -> bool:
        return not (self.client_streaming or self.server_streaming)


def methods_of(service_names: list[str]) -> list[Method]:
    """Every method of the named services, from the protobuf descriptor pool."""
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    found = []
    for name in service_names:
        if name.endswith(".ServerReflection"):
            # Served from connectrpc-grpcreflect's own descriptors, not the default pool.
            found.append(Method(f"/{name}/ServerReflectionInfo", True, True))
            continue
        service = pool.FindServiceByName(name)
        for method in service.methods:
            found.append(
                Method(
                    f"/{name}/{method.name}",
                    bool(method.client_streaming),
                    bool(method.server_streaming),
                )
            )
    return found
