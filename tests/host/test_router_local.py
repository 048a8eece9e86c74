"""The host's fast local channel (uvicorn, Unix socket) and routing to providers on theirs.

Both legs are the lean HTTP/1.1 transport: caller -> host fast channel -> router -> provider
served by uvicorn on its own Unix socket. Real servers, real generated clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from connectrpc.client import ResponseMetadata
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin as make_kv_plugin
from plugin_di.clock import FakeClock
from plugin_di.gen.capability.logger.v1 import logger_pb2
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.host.config import HostConfig
from plugin_di.host.router import Upstream
from plugin_di.host.server import Host
from plugin_di.host.tracker import DEGRADED, UNHEALTHY
from plugin_di.plugin.env import HOST_URL
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.plugin.host_client import HostClient
from plugin_di.rpc.transport import unix_socket_path
from tests.support.host import (
    ADMISSION,
    RecordingLogger,
    join_host,
    logger_plugin,
    served,
    served_fast,
)


async def test_fast_channel_socket_is_private_and_removed(clock: FakeClock) -> None:
    host = Host(HostConfig(sweep_interval=1e9), clock=clock, local_uds=True, admission=ADMISSION)
    assert host.local_url is not None
    assert host.local_url.startswith("unix:///")
    path = Path(unix_socket_path(host.local_url))
    assert _modes(path) == (0o600, 0o700)
    await host.start()
    await host.stop()
    assert _modes(path) == (None, None)


def _modes(path: Path) -> tuple[int | None, int | None]:
    """Permission bits of the socket file and its directory (None: gone)."""
    found = []
    for item in (path, path.parent):
        found.append(stat.S_IMODE(item.stat().st_mode) if item.exists() else None)
    return found[0], found[1]


async def test_fast_bind_refuses_a_non_loopback_address() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Host(local_bind="0.0.0.0:0")


async def test_routed_unary_stream_and_provider_errors_over_fast_channels(
    fast_host: Host,
) -> None:
    assert fast_host.local_url is not None
    kv = make_kv_plugin()
    async with served_fast(kv) as url:
        provider = await join_host(fast_host.local_url, kv, "kv", url)
        caller = HostClient(fast_host.local_url)
        try:
            await caller.handshake("app")
            found = await caller.discover("kv")
            assert found.endpoint.endpoint_url.startswith("/services/kv/kv-")
            client = caller.routed_client(KVServiceClient, found.endpoint)
            stream = client.watch(kv_pb2.WatchRequest(prefix="k"), timeout_ms=5000)
            first = await anext(stream)
            assert first.key == "_watch_started"
            await client.put(kv_pb2.PutRequest(key="k1", value=b"v1"), timeout_ms=2000)
            event = await anext(stream)
            assert (event.key, event.value) == ("k1", b"v1")
            await stream.aclose()
            got = await client.get(kv_pb2.GetRequest(key="k1"))
            assert (got.found, got.value) == (True, b"v1")
            with pytest.raises(ConnectError) as info:
                await client.put(kv_pb2.PutRequest(key="", value=b"x"))
            assert info.value.code is Code.INVALID_ARGUMENT  # the provider's own error

            # A caller asking for gzip (the generated default) and speaking gRPC-Web: the
            # lean upstream must not hand back a decoded body under a gzip header.
            base = caller.address + found.endpoint.endpoint_url
            for protocol in (ProtocolType.CONNECT, ProtocolType.GRPC_WEB):
                gz = KVServiceClient(
                    base,
                    http_client=caller.http_client,
                    interceptors=[caller.auth],
                    protocol=protocol,
                )
                got = await gz.get(kv_pb2.GetRequest(key="k1"))
                assert got.value == b"v1"
        finally:
            await caller.close()
            await provider.close()


@contextlib.asynccontextmanager
async def _served_http(plugin: Any) -> AsyncIterator[str]:
    async with served(plugin) as (_, url):
        yield url


@pytest.mark.parametrize("provider_on", ["unix", "http"])
async def test_routed_unary_calls_skip_the_asgi_router(
    fast_host: Host, monkeypatch: pytest.MonkeyPatch, provider_on: str
) -> None:
    """Unary calls take the host's short path (spliced to a provider on a Unix socket, or at
    an ``http://`` URL: HTTP/1.1); a stream still goes through the ASGI router."""
    assert fast_host.local_url is not None
    proxied: list[str] = []
    proxy = fast_host.router._proxy

    async def counting(scope: Any, *args: Any) -> None:
        proxied.append(scope["path"].rsplit("/", 1)[-1])
        await proxy(scope, *args)

    monkeypatch.setattr(fast_host.router, "_proxy", counting)
    kv = make_kv_plugin()
    serving = served_fast(kv) if provider_on == "unix" else _served_http(kv)
    async with serving as url:
        assert url.startswith("unix:" if provider_on == "unix" else "http://")
        provider = await join_host(fast_host.local_url, kv, "kv", url)
        assert provider.identity is not None
        caller = HostClient(fast_host.local_url)
        try:
            await caller.handshake("app")
            found = await caller.discover("kv")
            client = caller.routed_client(KVServiceClient, found.endpoint)
            await client.put(kv_pb2.PutRequest(key="u", value=b"1"))
            assert (await client.get(kv_pb2.GetRequest(key="u"))).value == b"1"
            assert proxied == []
            assert fast_host.router.in_flight(provider.identity.runtime_id) == 0
            stream = client.watch(kv_pb2.WatchRequest(prefix="u"), timeout_ms=5000)
            assert (await anext(stream)).key == "_watch_started"
            await stream.aclose()  # type: ignore[attr-defined]
            assert proxied == ["Watch"]
        finally:
            await caller.close()
            await provider.close()


async def test_router_refusals_and_stripped_credentials_over_fast_channel(
    fast_host: Host,
) -> None:
    assert fast_host.local_url is not None
    logger = RecordingLogger()
    async with served_fast(logger_plugin(logger)) as url:
        provider = await join_host(fast_host.local_url, logger_plugin(), "logger", url)
        assert provider.identity is not None
        pid = provider.identity.runtime_id
        caller = HostClient(fast_host.local_url)
        try:
            await caller.handshake("app")
            found = await caller.discover("logger")
            client = caller.routed_client(LoggerClient, found.endpoint)
            await client.log(logger_pb2.LogRequest(level="info", message="hello"))
            assert logger.lines == ["[info] hello"]
            seen = logger.headers[-1]
            assert "authorization" not in seen
            assert "x-plugin-runtime-id" not in seen

            anonymous = LoggerClient(
                caller.address + found.endpoint.endpoint_url,
                http_client=caller.http_client,
                send_compression=None,
                accept_compression=[],
            )
            with pytest.raises(ConnectError) as info:
                await anonymous.log(logger_pb2.LogRequest(message="x"))
            assert info.value.code is Code.UNAUTHENTICATED

            ghost = LoggerClient(
                caller.address + "/services/logger/ghost-00000000",
                http_client=caller.http_client,
                interceptors=[caller.auth],
                send_compression=None,
                accept_compression=[],
            )
            with pytest.raises(ConnectError) as info:
                await ghost.log(logger_pb2.LogRequest(message="x"))
            assert info.value.code is Code.NOT_FOUND

            fast_host.tracker.report(pid, DEGRADED, "slow")
            await client.log(logger_pb2.LogRequest(level="info", message="degraded"))
            assert logger.lines[-1] == "[info] degraded"
            fast_host.tracker.report(pid, UNHEALTHY, "broken")
            with pytest.raises(ConnectError) as info:
                await client.log(logger_pb2.LogRequest(message="x"))
            assert info.value.code is Code.UNAVAILABLE
            assert len(logger.lines) == 2  # the unhealthy provider was never called
        finally:
            await caller.close()
            await provider.close()


async def test_deadline_travels_over_fast_channels(fast_host: Host) -> None:
    assert fast_host.local_url is not None
    logger = RecordingLogger(gate=asyncio.Event())
    async with served_fast(logger_plugin(logger)) as url:
        provider = await join_host(fast_host.local_url, logger_plugin(), "logger", url)
        try:
            found = await provider.discover("logger")
            client = provider.routed_client(LoggerClient, found.endpoint)
            with ResponseMetadata() as meta:
                logger.gate.set()
                await client.log(logger_pb2.LogRequest(message="m"), timeout_ms=1500)
            assert meta.headers.get("x-served-by") == "logger"
            assert logger.headers[-1]["connect-timeout-ms"] == "1500"
            logger.gate.clear()
            with pytest.raises(ConnectError) as info:
                await client.log(logger_pb2.LogRequest(message="late"), timeout_ms=200)
            assert info.value.code is Code.DEADLINE_EXCEEDED
            logger.gate.set()
            # the pool recovers after the abandoned call
            await client.log(logger_pb2.LogRequest(message="after"), timeout_ms=2000)
        finally:
            await provider.close()


async def test_unreachable_fast_provider_is_unavailable(fast_host: Host) -> None:
    assert fast_host.local_url is not None
    with tempfile.TemporaryDirectory() as tmp:
        gone = "unix://" + os.path.join(tmp, "gone.sock")
        provider = await join_host(fast_host.local_url, logger_plugin(), "logger", gone)
        try:
            found = await provider.discover("logger")
            client = provider.routed_client(LoggerClient, found.endpoint)
            with pytest.raises(ConnectError) as info:
                await client.log(logger_pb2.LogRequest(message="x"))
            assert info.value.code is Code.UNAVAILABLE
        finally:
            await provider.close()


async def test_streamed_request_body_passes_through_and_bad_upstream_is_internal(
    fast_host: Host,
) -> None:
    assert fast_host.local_url is not None
    logger = RecordingLogger()
    async with served_fast(logger_plugin(logger)) as url:
        provider = await join_host(fast_host.local_url, logger_plugin(), "logger", url)
        assert provider.identity is not None
        pid = provider.identity.runtime_id
        try:
            found = await provider.discover("logger")
            route = provider.address + found.endpoint.endpoint_url + "/Log"
            headers = {
                "content-type": "application/json",
                "authorization": f"Bearer {provider.identity.runtime_token}",
                "x-plugin-runtime-id": pid,
            }

            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"level": "info", '
                yield b'"message": "in two chunks"}'

            # a body of unknown length goes out chunked; the router streams it on
            response = await provider.http_client.execute("POST", route, headers, chunks())
            assert response.status == 200
            assert logger.lines == ["[info] in two chunks"]

            fast_host.router.set_upstream(pid, Upstream(url="ftp://nowhere"))
            client = provider.routed_client(LoggerClient, found.endpoint)
            with pytest.raises(ConnectError) as info:
                await client.log(logger_pb2.LogRequest(message="x"))
            assert info.value.code is Code.INTERNAL
            assert "ftp" not in info.value.message  # no exception text on the wire
        finally:
            await provider.close()


async def test_fast_loopback_tcp_channel(clock: FakeClock) -> None:
    host = Host(
        HostConfig(sweep_interval=1e9), clock=clock, local_bind="127.0.0.1:0", admission=ADMISSION
    )
    assert host.local_url is not None
    assert host.local_url.startswith("http://127.0.0.1:")
    await host.start()
    try:
        kv = make_kv_plugin()
        async with served_fast(kv) as url:
            provider = await join_host(host.local_url, kv, "kv", url)
            try:
                found = await provider.discover("kv")
                client = provider.routed_client(KVServiceClient, found.endpoint)
                await client.put(kv_pb2.PutRequest(key="a", value=b"1"))
                assert (await client.get(kv_pb2.GetRequest(key="a"))).value == b"1"
            finally:
                await provider.close()
    finally:
        await host.stop()


async def test_request_body_is_passed_on_as_it_arrives() -> None:
    from plugin_di.host._proxy import request_body as _request_body

    inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    await inbox.put({"type": "http.request", "body": b"one", "more_body": False})
    assert await _request_body(inbox.get) == b"one"  # a unary body: sent whole

    await inbox.put({"type": "http.request", "body": b"first", "more_body": True})
    body = await _request_body(inbox.get)
    assert not isinstance(body, bytes)
    assert await anext(body) == b"first"  # before the rest has even arrived
    assert inbox.empty()
    await inbox.put({"type": "http.request", "body": b"second", "more_body": True})
    assert await anext(body) == b"second"
    await inbox.put({"type": "http.request", "body": b"", "more_body": False})
    with pytest.raises(StopAsyncIteration):
        await anext(body)


ROOT = Path(__file__).resolve().parents[2]


async def test_process_plugin_joins_through_the_fast_url_and_is_routed(fast_host: Host) -> None:
    """A real plugin process given ``local_url`` as PLUGIN_DI_HOST_URL self-registers there."""
    assert fast_host.local_url is not None
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "plugin_di", "serve", "examples.kv.plugin:plugin"]
        process = await asyncio.create_subprocess_exec(
            *command,
            "--uds",
            os.path.join(tmp, "kv.sock"),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), HOST_URL: fast_host.local_url},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        caller = HostClient(fast_host.local_url)
        try:
            assert process.stdout is not None
            async with asyncio.timeout(30):
                line = HandshakeLine.parse((await process.stdout.readline()).decode())
            assert line.url.startswith("unix:///")
            await caller.handshake("app")
            watch = caller.watch("kv")
            async with asyncio.timeout(8):
                while (await anext(watch)).state != registry_pb2.SERVICE_STATE_AVAILABLE:
                    pass
            await watch.aclose()
            found = await caller.discover("kv")
            client = caller.routed_client(KVServiceClient, found.endpoint)
            await client.put(kv_pb2.PutRequest(key="p", value=b"from a process"))
            got = await client.get(kv_pb2.GetRequest(key="p"))
            assert got.value == b"from a process"
        finally:
            await caller.close()
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def test_the_fast_names_still_work_and_say_they_are_deprecated() -> None:
    with pytest.deprecated_call():
        host = Host(fast_uds=True)
    try:
        with pytest.deprecated_call():
            assert host.fast_url == host.local_url
        assert host.local_url is not None
        assert host.local_url.startswith("unix://")
    finally:
        await host.stop()
