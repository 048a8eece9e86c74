"""H1Transport over a Unix socket (and TCP) against the real server, plus raw-socket edge cases."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from pyqwest import Client, Headers, ReadError, Request

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from plugin_di.clock import FakeClock
from plugin_di.rpc.asgi import ServiceMux
from plugin_di.rpc.h1 import H1Transport
from plugin_di.rpc.serving import bind_socket, serve
from plugin_di.rpc.split import SplitTransport
from plugin_di.rpc.transport import PluginHTTPClient, connect_client, http_client
from tests.support.kv import KV


@asynccontextmanager
async def serving(app: Any, address: str) -> AsyncIterator[str]:
    bound = bind_socket(address)
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(app, bound, shutdown=stop, ready=ready.set))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield bound.url
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "kv.sock")


@pytest.fixture
async def kv_uds(sock_path: str) -> AsyncIterator[tuple[KV, KVServiceClient, PluginHTTPClient]]:
    kv = KV(missing="not_found")
    async with (
        serving(ServiceMux([KVServiceASGIApplication(kv)]), f"unix:{sock_path}") as url,
        http_client(url) as http,
    ):
        yield kv, connect_client(KVServiceClient, url, http), http


async def test_unary_over_unix_socket_in_connect_and_grpc_web(
    kv_uds: tuple[KV, KVServiceClient, PluginHTTPClient],
) -> None:
    kv, client, http = kv_uds
    await client.put(pb.PutRequest(key="a", value=b"1"))
    assert (await client.get(pb.GetRequest(key="a"))).value == b"1"
    web = connect_client(KVServiceClient, "unix:///x", http, protocol=ProtocolType.GRPC_WEB)
    assert (await web.get(pb.GetRequest(key="a"))).value == b"1"
    # Sequential calls share one keep-alive connection.
    assert isinstance(http.transport, H1Transport)
    assert http.transport.idle_connections == 1
    # Compression is off: nothing gzipped, nothing offered.
    assert kv.headers[0].get("content-encoding", "identity") == "identity"
    assert "gzip" not in kv.headers[0].get("accept-encoding", "")


async def test_server_stream_of_1000_messages(
    kv_uds: tuple[KV, KVServiceClient, PluginHTTPClient],
) -> None:
    _, client, http = kv_uds
    for protocol in (ProtocolType.CONNECT, ProtocolType.GRPC_WEB):
        c = connect_client(KVServiceClient, "unix:///x", http, protocol=protocol)
        events = [e async for e in c.watch(pb.WatchRequest(prefix="count:1000"))]
        assert len(events) == 1000
        assert events[999].key == "k999"
        assert events[13].value == b"v" * 6
    # The stream was read to its end, so its connection went back to the pool.
    assert (await client.list(pb.ListRequest())).keys == []
    assert isinstance(http.transport, H1Transport)
    assert http.transport.idle_connections == 1


async def test_error_mapping_over_unix_socket(
    kv_uds: tuple[KV, KVServiceClient, PluginHTTPClient],
) -> None:
    _, _, http = kv_uds
    for protocol in (ProtocolType.CONNECT, ProtocolType.GRPC_WEB):
        c = connect_client(KVServiceClient, "unix:///x", http, protocol=protocol)
        with pytest.raises(ConnectError) as err:
            await c.get(pb.GetRequest(key="nope"))
        assert err.value.code == Code.NOT_FOUND
        assert err.value.message == "no key 'nope'"


async def test_call_after_server_restart(sock_path: str) -> None:
    kv = KV(missing="not_found")
    kv.data["k"] = b"v"
    app = ServiceMux([KVServiceASGIApplication(kv)])
    async with http_client(f"unix://{sock_path}") as http:
        client = connect_client(KVServiceClient, f"unix://{sock_path}", http)
        async with serving(app, f"unix:{sock_path}"):
            assert (await client.get(pb.GetRequest(key="k"))).found
        with pytest.raises(ConnectError) as down:
            await client.get(pb.GetRequest(key="k"))
        assert down.value.code == Code.UNAVAILABLE
        async with serving(app, f"unix:{sock_path}"):
            assert (await client.get(pb.GetRequest(key="k"))).found


async def test_abandoned_stream_drops_its_connection_and_the_pool_recovers(
    kv_uds: tuple[KV, KVServiceClient, PluginHTTPClient],
) -> None:
    _, client, http = kv_uds
    stream = client.watch(pb.WatchRequest(prefix="count:1000"))
    first = await anext(stream)
    assert first.key == "k0"
    await stream.aclose()  # type: ignore[attr-defined]
    assert isinstance(http.transport, H1Transport)
    assert http.transport.idle_connections == 0
    events = [e async for e in client.watch(pb.WatchRequest(prefix="count:3"))]
    assert [e.key for e in events] == ["k0", "k1", "k2"]


async def test_cancelled_call_drops_its_connection(
    kv_uds: tuple[KV, KVServiceClient, PluginHTTPClient],
) -> None:
    kv, client, http = kv_uds
    kv.data["block"] = b"b"
    call = asyncio.create_task(client.get(pb.GetRequest(key="block")))
    await asyncio.wait_for(kv.blocked.wait(), 5)
    call.cancel()
    with pytest.raises((asyncio.CancelledError, ConnectError)):
        await call
    assert isinstance(http.transport, H1Transport)
    assert http.transport.idle_connections == 0
    kv.release.set()
    await client.put(pb.PutRequest(key="after", value=b"ok"))
    assert (await client.get(pb.GetRequest(key="after"))).value == b"ok"


class ServerWaits:
    """Sends the server a 10 s deadline, whatever the call's own deadline is."""

    async def intercept_unary(self, call_next: Any, request: Any, ctx: Any) -> Any:
        ctx.request_headers["connect-timeout-ms"] = "10000"
        return await call_next(request, ctx)


async def test_deadline_is_deadline_exceeded_and_the_connection_is_not_reused(
    kv_uds: tuple[KV, KVServiceClient, PluginHTTPClient],
) -> None:
    kv, client, http = kv_uds
    kv.data["block"] = b"b"
    # The server is told a long deadline: only the client's 50 ms can fire (otherwise the
    # server may answer DEADLINE_EXCEEDED first, and that answer keeps the connection).
    patient = connect_client(KVServiceClient, "unix:///x", http, interceptors=[ServerWaits()])
    with pytest.raises(ConnectError) as err:
        await patient.get(pb.GetRequest(key="block"), timeout_ms=50)
    assert err.value.code == Code.DEADLINE_EXCEEDED
    assert kv.headers[-1]["connect-timeout-ms"] == "10000"
    assert isinstance(http.transport, H1Transport)
    assert http.transport.idle_connections == 0
    kv.release.set()
    assert (await client.get(pb.GetRequest(key="block"))).value == b"b"


async def test_unary_over_tcp_fast_path() -> None:
    kv = KV(missing="not_found")
    kv.data["t"] = b"tcp"
    async with serving(ServiceMux([KVServiceASGIApplication(kv)]), "127.0.0.1:0") as url:
        fast = url.replace("http://", "http+h1fast://")  # an alias of http:// now
        async with http_client(fast) as http:
            assert isinstance(http.buffered, SplitTransport)  # as on http://
            client = connect_client(KVServiceClient, fast, http)
            assert (await client.get(pb.GetRequest(key="t"))).value == b"tcp"
            events = [e async for e in client.watch(pb.WatchRequest(prefix="count:5"))]
            assert len(events) == 5
        async with http_client(url, http_version="h1fast") as http:
            assert isinstance(http.transport, H1Transport)
            client = connect_client(KVServiceClient, url, http)
            assert (await client.get(pb.GetRequest(key="t"))).found


# --- raw HTTP/1.1 servers for the cases the server will not produce on demand -----------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@asynccontextmanager
async def raw_server(path: str, handler: Handler) -> AsyncIterator[list[int]]:
    """A Unix-socket server calling ``handler(reader, writer, connection_number)``."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        try:
            await handler(reader, writer, len(connections) - 1)
        finally:
            writer.close()

    server = await asyncio.start_unix_server(on_connect, path)
    try:
        yield connections
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return head, body
            body += (await reader.readexactly(size + 2))[:-2]
    length = 0
    for line in lowered.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

MakeClient = Callable[[H1Transport], Client]


@pytest.fixture(params=["pyqwest", "fast"])
def make_client(request: pytest.FixtureRequest) -> MakeClient:
    """pyqwest's Client (``H1Transport.execute``) or PluginHTTPClient (``fetch``, buffered)."""
    if request.param == "pyqwest":
        return Client
    return lambda transport: PluginHTTPClient(transport, "http://localhost")


async def _post(http: Client, body: Any = b"x") -> bytes:
    response = await http.post("http://localhost/echo", content=body)
    return response.content


async def test_stale_pooled_connection_is_retried_once(
    sock_path: str, make_client: MakeClient
) -> None:
    async def answer_once_then_drop(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        # The next request on this connection gets no answer: the server "timed it out".
        await reader.readuntil(b"\r\n\r\n")

    async with raw_server(sock_path, answer_once_then_drop) as connections:
        transport = H1Transport(unix_path=sock_path)
        http = make_client(transport)
        assert await _post(http) == b"ok"
        assert transport.idle_connections == 1
        assert await _post(http) == b"ok"  # stale pooled connection, retried on a new one
        assert await _post(http) == b"ok"
        assert len(connections) == 3
        await transport.aclose()


async def test_streamed_request_body_is_not_replayed(
    sock_path: str, make_client: MakeClient
) -> None:
    async def answer_once_then_drop(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")

    async def body() -> AsyncIterator[bytes]:
        yield b"part"

    async with raw_server(sock_path, answer_once_then_drop):
        transport = H1Transport(unix_path=sock_path)
        http = make_client(transport)
        assert await _post(http) == b"ok"
        with pytest.raises(ConnectionError):
            await _post(http, body())
        await transport.aclose()


async def test_chunked_request_and_chunked_response_with_trailers(
    sock_path: str, make_client: MakeClient
) -> None:
    seen: list[bytes] = []

    async def echo_chunked(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        head, body = await read_request(reader)
        seen.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (body[:3], body[3:]):
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        writer.write(b"0\r\nx-trailer: ignored\r\n\r\n")
        await writer.drain()
        await read_request(reader)  # the pooled connection is used again
        writer.write(OK)
        await writer.drain()

    async def body() -> AsyncIterator[bytes]:
        for part in (b"hello ", b"", b"world"):
            yield part

    async with raw_server(sock_path, echo_chunked) as connections:
        transport = H1Transport(unix_path=sock_path)
        http = make_client(transport)
        assert await _post(http, body()) == b"hello world"
        assert b"transfer-encoding: chunked" in seen[0].lower()
        assert await _post(http) == b"ok"
        assert len(connections) == 1
        await transport.aclose()


async def test_socket_read_timeout(sock_path: str) -> None:
    async def never_answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_request(reader)
        await asyncio.Event().wait()

    async with raw_server(sock_path, never_answer):
        transport = H1Transport(unix_path=sock_path, read_timeout=0.05)
        with pytest.raises(TimeoutError):
            await transport.execute(Request("POST", "http://localhost/x", Headers(), b"x"))
        with pytest.raises(TimeoutError):
            await transport.fetch("POST", "http://localhost/x", None, b"x")
        assert transport.idle_connections == 0
        await transport.aclose()


async def test_connection_close_and_idle_expiry_on_the_clock(
    sock_path: str, make_client: MakeClient
) -> None:
    async def serve_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            try:
                head, _ = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if b"/close" in head:
                writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
                return
            writer.write(OK)
            await writer.drain()

    clock = FakeClock()
    async with raw_server(sock_path, serve_all) as connections:
        transport = H1Transport(unix_path=sock_path, idle_timeout=30, clock=clock)
        http = make_client(transport)
        assert (await http.post("http://localhost/close", content=b"")).content == b"ok"
        assert transport.idle_connections == 0  # "connection: close" is honoured
        assert await _post(http) == b"ok"
        clock.advance(10)
        assert await _post(http) == b"ok"
        assert len(connections) == 2  # reused while fresh
        clock.advance(31)
        assert await _post(http) == b"ok"
        assert len(connections) == 3  # idle too long: dropped, a new one dialled
        await transport.aclose()
        with pytest.raises(ConnectionError):
            await _post(http)


async def test_gzip_response_body_is_decoded(sock_path: str, make_client: MakeClient) -> None:
    payload = gzip.compress(b"compressed hello")

    async def gzip_reply(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%b"
            % (len(payload), payload)
        )
        await writer.drain()

    async with raw_server(sock_path, gzip_reply):
        transport = H1Transport(unix_path=sock_path)
        assert await _post(make_client(transport)) == b"compressed hello"
        await transport.aclose()


async def test_unknown_content_encoding_reaches_the_caller_undecoded(
    sock_path: str, make_client: MakeClient
) -> None:
    # As pyqwest does: the protocol layer refuses it (connectrpc: INTERNAL), not the transport.
    async def foo_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: foo\r\ncontent-length: 3\r\n\r\nabc")
        await writer.drain()

    async with raw_server(sock_path, foo_reply):
        transport = H1Transport(unix_path=sock_path)
        http = make_client(transport)
        response = await http.post("http://localhost/x", content=b"")
        assert (response.headers["content-encoding"], response.content) == ("foo", b"abc")
        await transport.aclose()


async def test_a_call_cancelled_as_its_connection_opens_is_cancelled(
    sock_path: str, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the conformance suite (Client Cancellation): on Python 3.11, asyncio.wait_for
    # around the dial handed back the new connection and dropped such a cancellation.
    requests: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        head, _ = await read_request(reader)
        requests.append(head)
        writer.write(OK)
        await writer.drain()

    loop = asyncio.get_running_loop()
    open_connection = loop.create_unix_connection
    calls: list[asyncio.Task[bytes]] = []

    async def open_then_cancel(*args: Any, **kwargs: Any) -> Any:
        opened = await open_connection(*args, **kwargs)
        calls[0].cancel()  # the cancellation lands just as the dial completes
        return opened

    monkeypatch.setattr(loop, "create_unix_connection", open_then_cancel)
    async with raw_server(sock_path, answer):
        transport = H1Transport(unix_path=sock_path)
        calls.append(asyncio.create_task(_post(make_client(transport))))
        with pytest.raises(asyncio.CancelledError):
            await calls[0]
        await transport.aclose()
    assert requests == []


async def test_nothing_listening_is_a_clear_connection_error(sock_path: str) -> None:
    transport = H1Transport(unix_path=sock_path)
    with pytest.raises(ConnectionError, match="is the plugin running"):
        await transport.execute(Request("POST", "http://localhost/x", Headers(), b""))
    with pytest.raises(ConnectionError, match="is the plugin running"):
        await transport.fetch("GET", "http://localhost/x")


async def test_fetch_interim_answers_empty_answers_and_answers_ended_by_close(
    sock_path: str,
) -> None:
    heads: list[bytes] = []

    async def odd_answers(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        while True:
            try:
                head, _ = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            heads.append(head)
            if b"/continue" in head:  # an interim answer, then the real one, in pieces
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-le")
                await writer.drain()
                writer.write(b"ngth: 5\r\n\r\nhel")
                await writer.drain()
                writer.write(b"lo")
            elif b"/empty" in head:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:  # no framing: the body ends when the connection does
                writer.write(b"HTTP/1.1 200 OK\r\nx-kind: close\r\n\r\nuntil close")
                await writer.drain()
                return
            await writer.drain()

    async with raw_server(sock_path, odd_answers) as connections:
        transport = H1Transport(unix_path=sock_path)
        http = PluginHTTPClient(transport, "http://localhost")
        continued = await http.post(
            "http://localhost/continue",
            {"x-a": "1", "content-encoding": "identity", "accept-encoding": "identity"},
            b"body",
        )
        assert (continued.status, continued.content) == (200, b"hello")
        empty = await http.get("http://localhost/empty")
        assert (empty.status, empty.content) == (204, b"")
        assert transport.idle_connections == 1
        closed = await http.execute(
            "PUT", "http://localhost/close", [("x-b", "2"), ("accept-encoding", "gzip")], b""
        )
        assert (closed.status, closed.content) == (200, b"until close")
        assert closed.headers["x-kind"] == "close"
        assert transport.idle_connections == 0  # ended by close: not pooled
        assert len(connections) == 1
        assert heads[0].startswith(b"POST /continue HTTP/1.1\r\n")
        assert b"x-a: 1\r\n" in heads[0]
        assert b"host: localhost\r\n" in heads[0]
        assert b"content-length: 4\r\n" in heads[0]
        assert b"identity" not in heads[0]  # the default codings are not spelled out
        assert heads[1].startswith(b"GET /empty")
        assert b"content-length" not in heads[1]
        assert heads[2].startswith(b"PUT /close")
        assert b"content-length: 0\r\n" in heads[2]
        assert b"accept-encoding: gzip\r\n" in heads[2]
        await transport.aclose()


async def test_large_bodies_and_oversized_bodies_over_unix_socket(sock_path: str) -> None:
    kv = KV(missing="not_found")
    app = ServiceMux([KVServiceASGIApplication(kv)], max_message_bytes=2 * 1024 * 1024)
    async with serving(app, f"unix:{sock_path}") as url, http_client(url) as http:
        client = connect_client(KVServiceClient, url, http)
        big = bytes(range(256)) * 4096  # 1 MiB: written beside the transport, then reused
        await client.put(pb.PutRequest(key="big", value=big))
        assert (await client.get(pb.GetRequest(key="big"))).value == big
        # The server answers before reading a body above its limit and closes; the answer
        # must still reach the caller (not a reset).
        for protocol in (ProtocolType.CONNECT, ProtocolType.GRPC_WEB):
            c = connect_client(KVServiceClient, url, http, protocol=protocol)
            with pytest.raises(ConnectError) as err:
                await c.put(pb.PutRequest(key="huge", value=b"x" * (3 * 1024 * 1024)))
            assert err.value.code == Code.RESOURCE_EXHAUSTED
        assert (await client.list(pb.ListRequest())).keys == ["big"]


def test_parsed_heads_are_cached_and_the_cache_stays_bounded() -> None:
    from plugin_di.rpc import _http1 as h1

    h1.HEAD_CACHE.clear()
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A:  b \r\n\r\n"
    first = h1.parse_head(raw, "POST")
    again = h1.parse_head(bytearray(raw), "POST")
    assert first is not None
    assert again is not None
    assert (again.status, again.length, again.keep_alive) == (200, 3, True)
    assert list(again.headers.items()) == [("content-length", "3"), ("x-a", "b")]
    assert again.headers is not first.headers  # each answer gets its own Headers
    assert h1.parse_head(raw, "HEAD").body == b""  # type: ignore[union-attr]
    assert len(h1.HEAD_CACHE) == 1
    for i in range(h1.HEAD_CACHE_SIZE + 10):
        h1.parse_head(b"HTTP/1.0 200 OK\r\nx-n: %d\r\n\r\n" % i, "GET")
    assert len(h1.HEAD_CACHE) <= h1.HEAD_CACHE_SIZE
    closing = h1.parse_head(b"HTTP/1.0 200 OK\r\n\r\n", "GET")
    assert closing is not None
    assert closing.keep_alive is False
    assert h1.parse_head(b"HTTP/1.1 100 Continue\r\n\r\n", "POST") is None
    with pytest.raises(ReadError, match="not an HTTP/1"):
        h1.parse_head(b"SSH-2.0 hello\r\n\r\n", "GET")


async def test_bytes_arriving_on_an_idle_connection_keep_it_out_of_the_pool(
    sock_path: str, make_client: MakeClient
) -> None:
    pooled = asyncio.Event()

    async def answer_then_408(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        if n == 0:  # a server timing the idle connection out, without closing it yet
            await pooled.wait()
            writer.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
        await reader.read()  # until the client closes the connection

    async with raw_server(sock_path, answer_then_408) as connections:
        transport = H1Transport(unix_path=sock_path)
        http = make_client(transport)
        assert await _post(http) == b"ok"
        assert transport.idle_connections == 1
        pooled.set()
        for _ in range(100):  # bounded: the stray answer lands within a few loop turns
            conn = transport._pool._idle[("localhost", 80)][0]
            if not conn.usable:
                break
            await asyncio.sleep(0.01)
        second = await http.post("http://localhost/echo", content=b"x")
        assert (second.status, second.content) == (200, b"ok")  # not the stray 408
        assert len(connections) == 2
        await transport.aclose()


def test_works_on_uvloop(sock_path: str) -> None:
    """uvloop's transports do not subclass asyncio.Transport; a plugin's own loop is uvloop."""
    import uvloop

    async def main() -> None:
        async def serve_all(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
        ) -> None:
            while True:
                try:
                    await read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                writer.write(OK)
                await writer.drain()

        async with raw_server(sock_path, serve_all) as connections:
            transport = H1Transport(unix_path=sock_path)
            assert await _post(PluginHTTPClient(transport, "http://localhost")) == b"ok"
            assert await _post(Client(transport)) == b"ok"
            assert len(connections) == 1
            await transport.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
