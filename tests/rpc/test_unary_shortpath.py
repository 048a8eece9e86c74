"""Connect unary calls on uvicorn's short path (rpc/fastproto + rpc/unary_shortpath).

A real uvicorn server on a Unix socket, inside the test's loop, serves a KV app with the
short path on, behind an ASGI app that counts what reaches it: what the short path takes
never reaches ASGI, everything else does, and both answer alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httptools
import pytest
from connectrpc.client import ResponseMetadata
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.interceptor import MetadataInterceptor
from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from plugin_di.rpc.asgi import Receive, Scope, Send, ServiceMux
from plugin_di.rpc.errors import SanitizeErrors, unpack_detail
from plugin_di.rpc.serving import bind_socket, serve
from plugin_di.rpc.transport import connect_client, http_client
from plugin_di.rpc.unary_shortpath import UnaryShortPaths
from tests.support.probe import ProbeKV
from tests.support.waiting import until

MAX = 1024


class _Counting:
    """The ASGI side: counts the HTTP requests that reach it."""

    def __init__(self, app: ServiceMux) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


class _Audit(MetadataInterceptor[None]):
    """A leading metadata interceptor: sees every call start and end."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, Code | None]] = []

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        ctx.response_headers["x-audited"] = ctx.method.name

    async def on_end(
        self, token: None, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        code = error.code if isinstance(error, ConnectError) else None
        self.ended.append((ctx.method.name, code))


@contextlib.asynccontextmanager
async def _served(tmp_path: Path) -> AsyncIterator[tuple[str, ProbeKV, _Counting, _Audit]]:
    impl = ProbeKV()
    audit = _Audit()
    apps = [KVServiceASGIApplication(impl, interceptors=[audit, SanitizeErrors()])]
    asgi = _Counting(ServiceMux(apps, max_message_bytes=MAX))
    bound = bind_socket(f"unix:{tmp_path / 's.sock'}")
    stop = asyncio.Event()
    ready = asyncio.Event()
    short = UnaryShortPaths(apps, max_message_bytes=MAX)
    task = asyncio.create_task(
        serve(asgi, bound, shutdown=stop, ready=ready.set, short_paths=short)
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield bound.url, impl, asgi, audit
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_unary_calls_skip_asgi_and_streams_do_not(tmp_path: Path) -> None:
    async with _served(tmp_path) as (url, impl, asgi, audit), http_client(url) as http:
        client = connect_client(KVServiceClient, url, http)
        await client.put(pb.PutRequest(key="k", value=b"v"))
        assert impl.last_put is not None
        assert impl.last_put.key == "k"
        got = await client.get(pb.GetRequest(key="k"))
        assert got.value == b"original"
        assert asgi.paths == []  # both answered on the short path
        assert audit.ended == [("Put", None), ("Get", None)]
        events = [e.key async for e in client.watch(pb.WatchRequest(prefix="w"))]
        assert events == ["w0", "w1", "w2"]
        assert asgi.paths == ["/kv.v1.KVService/Watch"]


async def test_headers_trailers_and_errors_match_connect(tmp_path: Path) -> None:
    async with _served(tmp_path) as (url, _impl, asgi, audit), http_client(url) as http:
        client = connect_client(KVServiceClient, url, http)
        with ResponseMetadata() as meta:
            await client.get(pb.GetRequest(key="k"))
        assert meta.headers["x-served-by"] == "probe"
        assert meta.headers["x-audited"] == "Get"
        assert meta.trailers["x-trailer"] == "t"

        with pytest.raises(ConnectError) as detailed:
            await client.get(pb.GetRequest(key="detailed"))
        assert (detailed.value.code, detailed.value.message) == (
            Code.FAILED_PRECONDITION,
            "not now",
        )
        why = unpack_detail(detailed.value, pb.WatchEvent)
        assert why is not None
        assert why.value == b"because"

        with pytest.raises(ConnectError) as boom:
            await client.get(pb.GetRequest(key="boom"))
        assert boom.value.code == Code.INTERNAL
        assert "hunter2" not in boom.value.message

        before = len(audit.ended)
        with pytest.raises(ConnectError) as late:
            await connect_client(KVServiceClient, url, http, timeout_ms=50).get(
                pb.GetRequest(key="hang")
            )
        assert late.value.code == Code.DEADLINE_EXCEEDED
        # The server's deadline (the same 50 ms, from the header) ends its side of the call;
        # the caller's own timer may have answered a moment sooner.
        await until(lambda: len(audit.ended) > before)
        assert audit.ended[-1] == ("Get", Code.DEADLINE_EXCEEDED)
        assert asgi.paths == []


def _exchange(path: str, request: bytes) -> bytes:
    """Send raw bytes on a new connection; everything the server sends until it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(request)
        data = b""
        for _ in range(1000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def _post(path: str, body: bytes, *headers: str, close: bool = False) -> bytes:
    head = [f"POST {path} HTTP/1.1", "host: x", f"content-length: {len(body)}", *headers]
    if close:
        head.append("connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Response:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = b""


def _parse(data: bytes) -> list[_Response]:
    """The HTTP/1.1 responses in ``data``, in order (content-length or chunked bodies)."""
    responses: list[_Response] = []

    class Callbacks:
        def on_message_begin(self) -> None:
            responses.append(_Response())

        def on_header(self, name: bytes, value: bytes) -> None:
            responses[-1].headers[name.lower()] = value

        def on_headers_complete(self) -> None:
            responses[-1].status = parser.get_status_code()

        def on_body(self, body: bytes) -> None:
            responses[-1].body += body

    parser = httptools.HttpResponseParser(Callbacks())
    parser.feed_data(data)
    return responses


async def test_raw_http_json_pipelining_and_fallbacks(tmp_path: Path) -> None:
    async with _served(tmp_path) as (url, _impl, asgi, _audit):
        sock = url.removeprefix("unix://")
        get = pb.GetRequest(key="k").SerializeToString()
        proto = "content-type: application/proto"

        # JSON on the short path; the answer closes the connection as asked.
        raw = _post(
            "/kv.v1.KVService/Get", b'{"key": "k"}', "content-type: application/json", close=True
        )
        (answer,) = _parse(await asyncio.to_thread(_exchange, sock, raw))
        assert answer.headers[b"content-type"] == b"application/json"
        assert answer.headers[b"connection"] == b"close"
        assert json.loads(answer.body) == {"value": "b3JpZ2luYWw=", "found": True}
        assert asgi.paths == []

        # Two requests in one write: the second waits for the first and is answered after it
        # (uvicorn's pipelining, so through ASGI), on the same connection.
        raw = _post("/kv.v1.KVService/Get", get, proto)
        raw += _post("/kv.v1.KVService/Get", get, proto, close=True)
        first, second = _parse(await asyncio.to_thread(_exchange, sock, raw))
        assert pb.GetResponse.FromString(first.body).value == b"original"
        assert first.headers[b"content-type"] == b"application/proto"
        assert pb.GetResponse.FromString(second.body).value == b"original"
        assert asgi.paths == ["/kv.v1.KVService/Get"]

        # Malformed body: INVALID_ARGUMENT as a Connect JSON error, still on the short path.
        bad = _post("/kv.v1.KVService/Get", b"\xff\xff", proto, close=True)
        (answer,) = _parse(await asyncio.to_thread(_exchange, sock, bad))
        assert answer.status == 400
        assert json.loads(answer.body)["code"] == "invalid_argument"
        assert asgi.paths == ["/kv.v1.KVService/Get"]

        # A client that waits for "100 Continue" gets it from uvicorn, through ASGI.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw_sock:
            raw_sock.settimeout(10)
            await asyncio.to_thread(raw_sock.connect, sock)
            head = _post("/kv.v1.KVService/Get", get, proto, "expect: 100-continue", close=True)
            head = head.removesuffix(get)
            await asyncio.to_thread(raw_sock.sendall, head)
            interim = await asyncio.to_thread(raw_sock.recv, 1024)
            assert interim.startswith(b"HTTP/1.1 100 Continue")
            await asyncio.to_thread(raw_sock.sendall, get)
            data = b""
            for _ in range(100):
                chunk = await asyncio.to_thread(raw_sock.recv, 65536)
                if not chunk:
                    break
                data += chunk
        (answer,) = _parse(data)
        assert pb.GetResponse.FromString(answer.body).value == b"original"
        assert asgi.paths[-1] == "/kv.v1.KVService/Get"

        # A gzip body, and one over the limit, go to connectrpc through ASGI.
        zipped = _post(
            "/kv.v1.KVService/Get", gzip.compress(get), proto, "content-encoding: gzip", close=True
        )
        (answer,) = _parse(await asyncio.to_thread(_exchange, sock, zipped))
        assert answer.status == 200
        assert pb.GetResponse.FromString(answer.body).value == b"original"
        big = _post("/kv.v1.KVService/Put", b"x" * (MAX + 1), proto, close=True)
        (answer,) = _parse(await asyncio.to_thread(_exchange, sock, big))
        assert answer.status == 429
        assert json.loads(answer.body)["code"] == "resource_exhausted"
        assert asgi.paths[2:] == ["/kv.v1.KVService/Get", "/kv.v1.KVService/Put"]


async def test_a_caller_that_goes_away_cancels_its_call(tmp_path: Path) -> None:
    async with _served(tmp_path) as (url, impl, _asgi, audit):
        sock = url.removeprefix("unix://")
        body = pb.GetRequest(key="hang").SerializeToString()
        _reader, writer = await asyncio.open_unix_connection(sock)
        writer.write(_post("/kv.v1.KVService/Get", body, "content-type: application/proto"))
        await asyncio.wait_for(impl.in_flight.wait(), 10)
        writer.close()
        await writer.wait_closed()
        for _ in range(200):  # the handler is cancelled; its interceptors still end
            if audit.ended:
                break
            await asyncio.sleep(0.01)
        assert audit.ended == [("Get", Code.CANCELED)]
