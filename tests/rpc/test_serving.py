"""The server (`plugin_di.rpc.serving`): HTTP/1.1 and HTTP/2 on one port, cleartext and TLS,
ASGI semantics, failures without exception text, and the graceful stop.

Real sockets on 127.0.0.1, the server in the test's loop; raw clients where a well-behaved
client would not produce the case."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hyperframe.frame import DataFrame
from pyqwest import Client, HTTPTransport, HTTPVersion

from plugin_di.rpc.serving import Answer, Exchange, StartupFailed, bind_socket, serve
from plugin_di.rpc.tls import ServerTLS, generate_ephemeral_cert
from tests.support.servers import RawH2, closed_by_peer, read_response, running, wait_until


class App:
    """A small ASGI app whose paths each exercise one behaviour."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.cancelled = 0
        self.disconnects = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        path = scope["path"]
        self.started += 1
        try:
            await getattr(self, "_" + path.strip("/").replace("-", "_"))(scope, receive, send)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def _echo(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await _respond(send, 200, body or scope["method"].encode())

    async def _slow(self, scope: Any, receive: Any, send: Any) -> None:
        await self.release.wait()
        await _respond(send, 200, b"late")

    async def _stream(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _trailers(self, scope: Any, receive: Any, send: Any) -> None:
        trailers = "http.response.trailers" in scope.get("extensions", {})
        await send(
            {"type": "http.response.start", "status": 200, "headers": [], "trailers": trailers}
        )
        await send({"type": "http.response.body", "body": b"msg", "more_body": False})
        if trailers:
            await send({"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")]})

    async def _boom(self, scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("secret=hunter2")

    async def _nothing(self, scope: Any, receive: Any, send: Any) -> None:
        return

    async def _early(self, scope: Any, receive: Any, send: Any) -> None:
        await _respond(send, 413, b"too big")  # never reads the body

    async def _wait_disconnect(self, scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnects += 1


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body, "more_body": False})


@contextlib.asynccontextmanager
async def h2_client() -> AsyncIterator[Client]:
    """A pyqwest client speaking HTTP/2 with prior knowledge (hyper honours GOAWAY)."""
    transport = HTTPTransport(http_version=HTTPVersion.HTTP2)
    try:
        yield Client(transport)
    finally:
        await transport.aclose()
        await asyncio.sleep(0.05)  # pyqwest's threads settle after close


async def _h1(host: str, port: int, data: bytes) -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    return reader, writer


async def test_http1_and_http2_share_one_port() -> None:
    app = App()
    async with running(app) as (_, host, port):
        reader, writer = await _h1(
            host, port, b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello"
        )
        head, body = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 200")
        assert body == b"hello"
        writer.close()
        client = await RawH2.connect(host, port)
        stream = client.request("/echo", body=b"over h2")
        await client.until(lambda: client.streams[stream].ended, what="the h2 answer")
        assert (b":status", b"200") in client.streams[stream].headers
        assert bytes(client.streams[stream].data) == b"over h2"
        client.close()


@pytest.mark.parametrize("value", [b"a\x01b", b"a\rb", b"\x7f", b"a\x1bb"])
async def test_header_values_with_control_bytes_are_refused_before_the_app(value: bytes) -> None:
    # A relay could not forward them (the host's router raised on one); RFC 9110 5.5.
    app = App()
    async with running(app) as (_, host, port):
        reader, writer = await _h1(
            host,
            port,
            b"POST /echo HTTP/1.1\r\nhost: x\r\nx-odd: " + value + b"\r\n"
            b"content-length: 2\r\n\r\nhi",
        )
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 400")
        writer.close()
        if b"\r" not in value:  # h2 itself refuses CR, NUL and LF before it reaches us
            client = await RawH2.connect(host, port)
            stream = client.request("/echo", body=b"hi", extra=[(b"x-odd", value)])
            await client.until(lambda: client.streams[stream].reset is not None, what="a reset")
            assert client.streams[stream].reset == 1  # PROTOCOL_ERROR
            client.close()
    assert app.started == 0


async def test_a_long_http2_connection_remembers_a_bounded_number_of_closed_streams() -> None:
    # h2's default is 65,536 closed streams per connection: RSS grew in steps in a soak.
    async with running(App()) as (server, host, port):
        client = await RawH2.connect(host, port)
        for batch in range(12):  # 1,200 streams, 100 at a time (the stream limit)
            streams = [client.request("/echo", body=b"x") for _ in range(100)]
            await client.flush()
            await client.until(
                lambda streams=streams: all(client.streams[s].ended for s in streams),
                what=f"batch {batch}",
            )
        (connection,) = [c for hub in server.hubs for c in hub.connections]
        remembered = len(connection.h2._closed_streams)  # type: ignore[attr-defined]
        assert 0 < remembered <= 1024
        client.close()


async def test_tls_negotiates_h2_or_http1_by_alpn() -> None:
    pair = generate_ephemeral_cert("localhost")
    context = ServerTLS(pair.cert_pem, pair.key_pem).ssl_context()
    async with running(App(), tls=context) as (_, host, port):
        for alpn, expected in (("h2", HTTPVersion.HTTP2), ("http/1.1", HTTPVersion.HTTP1)):
            client_ctx = ssl.create_default_context(cadata=pair.cert_pem.decode())
            client_ctx.check_hostname = False
            client_ctx.set_alpn_protocols([alpn])
            _, writer = await asyncio.open_connection(host, port, ssl=client_ctx)
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == alpn
            writer.close()
            transport = HTTPTransport(tls_ca_cert=pair.cert_pem, http_version=expected)
            try:
                answer = await Client(transport).post(
                    f"https://localhost:{port}/echo", content=b"secure"
                )
                assert (answer.status, answer.content) == (200, b"secure")
            finally:
                await transport.aclose()
                await asyncio.sleep(0.05)  # pyqwest's threads settle after close


async def test_http1_details_chunked_expect_head_pipelining_and_http10() -> None:
    async with running(App()) as (_, host, port):
        reader, writer = await _h1(
            host,
            port,
            b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        assert (await read_response(reader))[1] == b"abcde"
        writer.write(
            b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n"
        )
        async with asyncio.timeout(10):
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        assert (await read_response(reader))[1] == b"ok"
        # two requests in one write: answered in order on the same connection
        writer.write(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\none"
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\ntwo"
        )
        assert (await read_response(reader))[1] == b"one"
        assert (await read_response(reader))[1] == b"two"
        writer.write(b"HEAD /echo HTTP/1.1\r\nhost: x\r\n\r\n")
        head, _ = await read_response_head_only(reader)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"content-length: 4" in head
        writer.write(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            assert b"transfer-encoding: chunked" in head
            body = await reader.readuntil(b"0\r\n\r\n")
        assert b"part0;" in body
        assert b"part2;" in body
        writer.close()
        reader, writer = await _h1(host, port, b"GET /echo HTTP/1.0\r\n\r\n")
        head, body = await read_response(reader)
        assert b"connection: close" in head
        assert body == b"GET"
        assert await closed_by_peer(reader)


async def read_response_head_only(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    async with asyncio.timeout(10):
        return await reader.readuntil(b"\r\n\r\n"), b""


async def test_trailers_are_offered_on_http2_only() -> None:
    async with running(App()) as (_, host, port):
        client = await RawH2.connect(host, port)
        stream = client.request("/trailers")
        await client.until(lambda: client.streams[stream].ended, what="trailers")
        assert client.streams[stream].trailers == [(b"grpc-status", b"0")]
        client.close()
        reader, writer = await _h1(host, port, b"GET /trailers HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await read_response(reader))[1] == b"msg"
        writer.close()


@pytest.mark.parametrize("path", ["/boom", "/nothing"])
async def test_a_failing_app_gets_500_without_its_text(path: str) -> None:
    async with running(App()) as (_, host, port):
        reader, writer = await _h1(host, port, f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        head, body = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 500")
        assert body == b'{"code":"internal","message":"internal error"}'
        writer.close()
        client = await RawH2.connect(host, port)
        stream = client.request(path)
        await client.until(lambda: client.streams[stream].ended, what="the h2 500")
        assert (b":status", b"500") in client.streams[stream].headers
        assert b"hunter2" not in bytes(client.streams[stream].data)
        client.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"GET /echo HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n", b"400"),
        (b"GET /echo HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
    ],
)
async def test_malformed_requests_get_a_clean_refusal(request_bytes: bytes, status: bytes) -> None:
    async with running(App()) as (server, host, port):
        reader, writer = await _h1(host, port, request_bytes)
        head, _ = await read_response(reader)
        assert head.split(b" ")[1] == status
        assert await closed_by_peer(reader)
        writer.close()
        await wait_until(lambda: server.connections == 0, what="the connection released")


async def test_an_answer_before_the_body_discards_the_rest_and_keeps_the_connection() -> None:
    async with running(App()) as (_, host, port):
        reader, writer = await _h1(
            host, port, b"POST /early HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n12345"
        )
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 413")
        writer.write(b"67890POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nok")
        assert (await read_response(reader))[1] == b"ok"
        writer.close()
        client = await RawH2.connect(host, port)
        stream = client.request("/early", body=b"first half", end=False)
        await client.until(lambda: client.streams[stream].ended, what="the early answer")
        # data the client sent before it saw the end: dropped, never a connection error
        late = DataFrame(stream, data=b"second half", flags=["END_STREAM"])
        client.writer.write(late.serialize())
        again = client.request("/echo", body=b"still fine")
        await client.flush()
        await client.until(lambda: client.streams[again].ended, what="the next answer")
        assert bytes(client.streams[again].data) == b"still fine"
        client.close()


async def test_a_body_the_app_never_read_gives_the_connection_window_back() -> None:
    # The host relays many calls on one HTTP/2 connection: each early answer that left its
    # received body unread kept that many bytes of the connection's window, until the
    # window was gone and every later request body waited forever (found by `make fuzz`).
    async with running(App()) as (_, host, port):
        client = await RawH2.connect(host, port)
        await client.until(lambda: client.conn.outbound_flow_control_window > 65_535, what="1 MiB")
        window = client.conn.outbound_flow_control_window
        sent = 0
        for batch in range(20):  # twice the connection's window, 8 streams at a time
            assert client.conn.outbound_flow_control_window >= 8 * 16_000, f"batch {batch}"
            streams = [client.request("/early", body=b"x" * 16_000, end=False) for _ in range(8)]
            sent += 8 * 16_000
            await client.flush()
            await client.until(
                lambda streams=streams: all(client.streams[s].ended for s in streams),
                what=f"batch {batch}",
            )
        assert sent > 2 * window
        check = client.request("/echo", body=b"still fine")
        await client.flush()
        await client.until(lambda: client.streams[check].ended, what="the next answer")
        assert bytes(client.streams[check].data) == b"still fine"
        client.close()


async def test_a_client_that_leaves_cancels_its_request() -> None:
    app = App()
    async with running(app) as (server, host, port):
        _, writer = await _h1(host, port, b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        await wait_until(lambda: server.in_flight == 1, what="the request in flight")
        writer.close()
        await wait_until(lambda: app.cancelled == 1, what="the request cancelled")
        assert server.in_flight == 0
        client = await RawH2.connect(host, port)
        stream = client.request("/slow")
        await client.flush()
        await wait_until(lambda: server.in_flight == 1, what="the h2 request in flight")
        client.conn.reset_stream(stream)
        await client.flush()
        await wait_until(lambda: app.cancelled == 2, what="the h2 request cancelled")
        client.close()


async def test_graceful_stop_answers_what_was_accepted_and_refuses_new_connections() -> None:
    app = App()
    async with running(app) as (server, host, port), h2_client() as http:
        idle_reader, idle_writer = await _h1(host, port, b"")
        busy_reader, busy_writer = await _h1(host, port, b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        h2_call = asyncio.create_task(http.post(f"http://{host}:{port}/slow", content=b""))
        await wait_until(lambda: server.in_flight == 2, what="two requests in flight")
        stopping = asyncio.create_task(server.stop())
        assert await closed_by_peer(idle_reader)  # idle: closed at once
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(host, port)  # the listener is closed
        app.release.set()
        head, body = await read_response(busy_reader)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in head
        assert body == b"late"
        answer = await asyncio.wait_for(h2_call, 10)  # after GOAWAY, the open stream finishes
        assert (answer.status, answer.content) == (200, b"late")
        await asyncio.wait_for(stopping, 10)
        assert server.connections == 0
        for writer in (idle_writer, busy_writer):
            writer.close()


async def test_the_grace_period_cancels_what_is_still_running() -> None:
    app = App()
    async with running(app, grace_period=0.05) as (server, host, port), h2_client() as http:
        reader, writer = await _h1(host, port, b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        h2_call = asyncio.create_task(http.post(f"http://{host}:{port}/slow", content=b""))
        await wait_until(lambda: server.in_flight == 2, what="two requests in flight")
        stopping = asyncio.create_task(server.stop())
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 499")
        with pytest.raises(Exception, match=r"(?i)cancel|no longer needed"):  # RST_STREAM(CANCEL)
            await asyncio.wait_for(h2_call, 10)
        await asyncio.wait_for(stopping, 10)
        assert app.cancelled == 2
        writer.close()


async def test_failed_startup_is_reported_and_releases_the_socket() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    bound = bind_socket("127.0.0.1:0")
    ready: list[bool] = []
    with pytest.raises(StartupFailed, match="no database"):
        await serve(app, bound, shutdown=asyncio.Event(), ready=lambda: ready.append(True))
    assert ready == []
    assert bound.sock.fileno() == -1


async def test_short_paths_answer_without_asgi_and_the_rest_goes_through() -> None:
    app = App()

    class Echo:
        def match(self, method: bytes, path: bytes, headers: Any) -> Any:
            if path != b"/short":
                return None
            return lambda exchange: _short(exchange)

    def _short(exchange: Exchange) -> None:
        exchange.respond(Answer(200, [(b"x-short", b"1")], b"short:" + exchange.body))

    async with running(app, short_paths=Echo()) as (_, host, port):
        reader, writer = await _h1(
            host, port, b"POST /short HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi"
        )
        head, body = await read_response(reader)
        assert b"x-short: 1" in head
        assert body == b"short:hi"
        writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nyo")
        assert (await read_response(reader))[1] == b"yo"
        assert app.started == 1  # only /echo reached the app
        writer.close()
