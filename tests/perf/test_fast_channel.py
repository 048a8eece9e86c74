"""A plugin on a Unix socket end to end: the server, the lean HTTP/1.1 transport.

Each test serves a real plugin with `serve_async` (inside the test's loop) or as a real
process, and calls it with the generated clients over ``http_client("unix://...")``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.interceptor import UnaryInterceptor
from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient, KVServiceClientSync
from examples.kv.plugin import make_plugin
from examples.kv.store import WATCH_STARTED
from plugin_di.clock import FakeClock
from plugin_di.plugin import config as plugin_config
from plugin_di.plugin import env
from plugin_di.rpc.transport import connect_client, http_client, sync_http_client
from tests.support.inloop import serving
from tests.support.probe import probe_plugin
from tests.support.processes import SERVE_KV, running


def _raw_head(path: str) -> bytes:
    """One raw HTTP/1.1 request on the socket; the response head as sent."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n")[0].lower()


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "p.sock")


async def test_unary_calls_over_a_unix_socket(sock_path: str) -> None:
    async with serving(make_plugin(), uds=sock_path) as (_, line, _out):
        assert line.network == "unix"
        assert line.address == sock_path
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
        head = await asyncio.to_thread(_raw_head, sock_path)
        assert head.startswith(b"http/1.1 200")
        async with http_client(line.url) as http:
            client = connect_client(KVServiceClient, line.url, http)
            await client.put(pb.PutRequest(key="k", value=b"v"))
            got = await client.get(pb.GetRequest(key="k"))
            assert (got.value, got.found) == (b"v", True)
    assert not await asyncio.to_thread(os.path.exists, sock_path)  # removed on stop


async def test_errors_keep_their_codes_and_hide_exception_text(sock_path: str) -> None:
    plugin, _impl = probe_plugin()
    async with serving(plugin, uds=sock_path) as (_, line, _out), http_client(line.url) as http:
        client = connect_client(KVServiceClient, line.url, http)
        with pytest.raises(ConnectError) as denied:
            await client.get(pb.GetRequest(key="denied"))
        assert (denied.value.code, denied.value.message) == (
            Code.PERMISSION_DENIED,
            "not yours",
        )
        with pytest.raises(ConnectError) as boom:
            await client.get(pb.GetRequest(key="boom"))
        assert boom.value.code == Code.INTERNAL
        assert "hunter2" not in boom.value.message
        with pytest.raises(ConnectError) as unimplemented:
            await client.list(pb.ListRequest())
        assert unimplemented.value.code == Code.UNIMPLEMENTED
        # the pooled connection is still good after errors
        assert (await client.get(pb.GetRequest(key="x"))).value == b"original"


async def test_deadline_exceeded_and_the_channel_survives(sock_path: str) -> None:
    plugin, impl = probe_plugin()
    async with serving(plugin, uds=sock_path) as (_, line, _out), http_client(line.url) as http:
        slow = connect_client(KVServiceClient, line.url, http, timeout_ms=100)
        with pytest.raises(ConnectError) as info:
            await slow.get(pb.GetRequest(key="hang"))
        assert info.value.code == Code.DEADLINE_EXCEEDED
        assert impl.in_flight.is_set()
        client = connect_client(KVServiceClient, line.url, http)
        assert (await client.get(pb.GetRequest(key="x"))).found


async def test_server_stream_and_errors_mid_stream(sock_path: str) -> None:
    async with (
        serving(make_plugin(), uds=sock_path) as (_, line, _out),
        http_client(line.url) as http,
    ):
        client = connect_client(KVServiceClient, line.url, http)
        watch = client.watch(pb.WatchRequest(prefix="w/"))
        assert (await anext(watch)).key == WATCH_STARTED
        for i in range(3):
            await client.put(pb.PutRequest(key=f"w/{i}", value=b"%d" % i))
        events = [await asyncio.wait_for(anext(watch), 10) for _ in range(3)]
        assert [(e.key, e.value) for e in events] == [
            ("w/0", b"0"),
            ("w/1", b"1"),
            ("w/2", b"2"),
        ]
        await watch.aclose()  # type: ignore[attr-defined]
    plugin, _impl = probe_plugin()
    async with serving(plugin, uds=sock_path) as (_, line, _out), http_client(line.url) as http:
        client = connect_client(KVServiceClient, line.url, http)
        stream = client.watch(pb.WatchRequest(prefix="fail"))
        keys: list[str] = []

        async def drain() -> None:
            async for event in stream:
                keys.append(event.key)

        with pytest.raises(ConnectError) as info:
            await drain()
        assert keys == ["fail0", "fail1", "fail2"]
        assert info.value.code == Code.INTERNAL
        assert "secret" not in info.value.message


class _Tag(UnaryInterceptor):
    """Adds a response header on every unary call."""

    def __init__(self) -> None:
        self.calls = 0

    async def intercept_unary(
        self, call_next: Any, request: Any, ctx: RequestContext[Any, Any]
    ) -> Any:
        self.calls += 1
        ctx.response_headers["x-tagged"] = "yes"
        return await call_next(request, ctx)


async def test_interceptors_and_message_limits_apply(sock_path: str) -> None:
    tag = _Tag()
    environ = {plugin_config.MAX_MESSAGE_BYTES: "1024"}
    async with (
        serving(make_plugin(), uds=sock_path, interceptors=[tag], environ=environ) as (
            _,
            line,
            _out,
        ),
        http_client(line.url) as http,
    ):
        client = connect_client(KVServiceClient, line.url, http)
        await client.put(pb.PutRequest(key="small", value=b"v"))
        assert tag.calls == 1
        for _ in range(3):
            with pytest.raises(ConnectError) as info:
                await client.put(pb.PutRequest(key="big", value=b"x" * 5000))
            assert info.value.code == Code.RESOURCE_EXHAUSTED
        assert (await client.get(pb.GetRequest(key="small"))).found


async def test_a_call_in_flight_finishes_on_stop(sock_path: str) -> None:
    plugin, impl = probe_plugin()
    async with (
        serving(plugin, uds=sock_path) as (server, line, _out),
        http_client(line.url) as http,
    ):
        client = connect_client(KVServiceClient, line.url, http)
        call = asyncio.create_task(client.get(pb.GetRequest(key="until-stop")))
        await asyncio.wait_for(impl.in_flight.wait(), 10)
        server.request_stop(5.0, "test")
        assert (await asyncio.wait_for(call, 10)).value == b"finished"
        await asyncio.wait_for(server.wait_stopped(), 10)


async def test_a_call_past_the_grace_period_is_cancelled(sock_path: str) -> None:
    plugin, impl = probe_plugin()
    clock = FakeClock()
    async with (
        serving(plugin, uds=sock_path, clock=clock, grace_period=3) as (server, line, _out),
        http_client(line.url) as http,
    ):
        client = connect_client(KVServiceClient, line.url, http)
        call = asyncio.create_task(client.get(pb.GetRequest(key="hang")))
        await asyncio.wait_for(impl.in_flight.wait(), 10)
        server.request_stop(None, "test")
        for _ in range(500):
            if clock.sleepers:
                break
            await asyncio.sleep(0.01)
        assert not call.done()
        clock.advance(3)
        with pytest.raises(ConnectError) as info:
            await asyncio.wait_for(call, 10)
        assert info.value.code == Code.CANCELED
        await asyncio.wait_for(server.wait_stopped(), 10)


async def test_sync_client_on_the_fast_channel(sock_path: str) -> None:
    async with serving(make_plugin(), uds=sock_path) as (_, line, _out):

        def calls() -> bytes:
            with sync_http_client(line.url) as http:
                client = connect_client(KVServiceClientSync, line.url, http)
                client.put(pb.PutRequest(key="s", value=b"sync"))
                return client.get(pb.GetRequest(key="s")).value

        assert await asyncio.to_thread(calls) == b"sync"


async def test_process_launched_like_the_host_does(tmp_path: Path) -> None:
    socket_dir = tmp_path / "socks"
    socket_dir.mkdir(mode=0o700)
    with running(SERVE_KV, {env.UNIX_SOCKET_DIR: str(socket_dir)}) as plugin:
        assert plugin.line.network == "unix"
        assert Path(plugin.line.address).parent == socket_dir
        assert stat.S_IMODE(os.stat(plugin.line.address).st_mode) == 0o600
        head = await asyncio.to_thread(_raw_head, plugin.line.address)
        assert head.startswith(b"http/1.1 200")
        async with http_client(plugin.url) as http:
            client = connect_client(KVServiceClient, plugin.url, http)
            await client.put(pb.PutRequest(key="p", value=b"1"))
            assert (await client.get(pb.GetRequest(key="p"))).value == b"1"
        plugin.stop()
        assert plugin.proc.returncode == 0
        assert not await asyncio.to_thread(os.path.exists, plugin.line.address)


async def test_an_abandoned_stream_does_not_hold_up_the_stop(sock_path: str) -> None:
    # With a 30 s grace period, a send stuck on the closed connection would outlast the
    # 10 s `serving` allows for the stop.
    async with serving(make_plugin(), uds=sock_path, grace_period=30.0) as (server, line, _out):
        async with http_client(line.url) as http:
            client = connect_client(KVServiceClient, line.url, http)
            watch = client.watch(pb.WatchRequest())
            assert (await anext(watch)).key == WATCH_STARTED
            await watch.aclose()  # type: ignore[attr-defined]
            await client.put(pb.PutRequest(key="after", value=b"1"))  # written to no one
            assert (await client.get(pb.GetRequest(key="after"))).found
        server.request_stop(None, "test")


async def test_failed_lifespan_startup_is_reported_and_never_ready(sock_path: str) -> None:
    from plugin_di.rpc.serving import StartupFailed, bind_socket, serve

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    ready: list[bool] = []
    bound = bind_socket("unix:" + sock_path)
    with pytest.raises(StartupFailed):
        await serve(app, bound, shutdown=asyncio.Event(), ready=lambda: ready.append(True))
    assert ready == []
    assert not await asyncio.to_thread(os.path.exists, sock_path)


async def test_pooled_connection_survives_a_server_restart(sock_path: str) -> None:
    url = "unix://" + sock_path
    async with http_client(url) as http:
        client = connect_client(KVServiceClient, url, http)
        for value in (b"first", b"second"):
            async with serving(make_plugin(), uds=sock_path):
                await client.put(pb.PutRequest(key="r", value=value))
                # the second round runs on a connection the first server closed: retried once
                assert (await client.get(pb.GetRequest(key="r"))).value == value
