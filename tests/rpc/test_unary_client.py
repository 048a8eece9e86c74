"""The client's short path for unary calls (`plugin_di.rpc.unary_client`), side by side with
connectrpc's own clients (async and sync) on the same transport: the same request bytes, the
same answers, the same errors, whatever the server says."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from connectrpc.client import ResponseMetadata
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.interceptor import MetadataInterceptor
from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient, KVServiceClientSync
from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.launch._endpoint import EndpointClient, close_target, target_for
from plugin_di.plugin.host_client import HostClient
from plugin_di.plugin.identity import RuntimeIdentity
from plugin_di.rpc._http1 import INLINE_BODY_BYTES
from plugin_di.rpc.h1 import H1Transport
from plugin_di.rpc.h1sync import SyncH1Transport
from plugin_di.rpc.transport import (
    PluginHTTPClient,
    PluginSyncHTTPClient,
    connect_client,
    http_client,
    sync_http_client,
)

IO_TIMEOUT = 10.0
PROTO = "application/proto"
FOUND = pb.GetResponse(value=b"v", found=True).SerializeToString()
READ_MAX = 300
"""The clients' read limit in the answer tests: above every answer but "too large"."""


@dataclass
class Canned:
    """A server that records each request and answers it with ``answer(request)``."""

    answer: Callable[[bytes], bytes | None]
    """the response bytes; None: close without answering"""
    requests: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.answer(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"\r\nconnection: close\r\n" in answer.split(b"\r\n\r\n", 1)[0] + b"\r\n":
                    break  # a close-delimited body ends when the connection does
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def canned(answer: Callable[[bytes], bytes | None]) -> AsyncIterator[tuple[str, Canned]]:
    server_side = Canned(answer)
    server = await asyncio.start_server(server_side.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server_side
    finally:
        server.close()
        async with asyncio.timeout(IO_TIMEOUT):
            await server.wait_closed()


def response(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def connectrpc_client(url: str, http: PluginHTTPClient, **options: Any) -> KVServiceClient:
    """connectrpc's own client on the same transport, configured as `connect_client` does."""
    return KVServiceClient(
        url, http_client=http, send_compression=None, accept_compression=[], **options
    )


async def outcome(call: Any) -> tuple[Any, ...]:
    """What a call gave: the message, or the error's code, message and details."""
    try:
        async with asyncio.timeout(IO_TIMEOUT):
            got = await call
    except ConnectError as exc:
        details = [(d.type_name, d.message_bytes) for d in exc.details]
        return ("error", exc.code, exc.message, details)
    return ("ok", got.SerializeToString())


def header_lines(request: bytes) -> list[bytes]:
    """A request's head lines after the request line, sorted."""
    return sorted(request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:])


_ERROR = json.dumps(
    {
        "code": "failed_precondition",
        "message": "not now",
        "details": [{"type": "kv.v1.WatchEvent", "value": "CgJrMQ"}],
    }
).encode()

ANSWERS = {
    "found": response(200, [("content-type", PROTO)], FOUND),
    "explicit identity": response(
        200, [("content-type", PROTO), ("content-encoding", "identity")], FOUND
    ),
    "chunked": (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\n"
        b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(FOUND), FOUND)
    ),
    "gzip body": response(
        200, [("content-type", PROTO), ("content-encoding", "gzip")], gzip.compress(FOUND)
    ),
    "json content type": response(200, [("content-type", "application/json")], b"{}"),
    "text content type": response(200, [("content-type", "text/plain")], b"hello"),
    "charset": response(200, [("content-type", "application/proto; charset=utf-8")], FOUND),
    "undecodable": response(200, [("content-type", PROTO)], b"\xff\xff\xff"),
    "too large": response(200, [("content-type", PROTO)], FOUND + b"\x0a\x90\x03" + b"x" * 400),
    "connect error": response(400, [("content-type", "application/json")], _ERROR),
    "error without json": response(503, [("content-type", "text/plain")], b"busy"),
    "error with bad json": response(500, [("content-type", "application/json")], b"{oops"),
    "interim 100 first": b"HTTP/1.1 100 Continue\r\n\r\n"
    + response(200, [("content-type", PROTO)], FOUND),
    "close-delimited body": (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\nconnection: close\r\n\r\n" + FOUND
    ),
    "not http": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    "head too large": b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (70 * 1024) + b"\r\n\r\n",
}

# What some of them must give, whichever client reads them (the rest: equal is enough).
EXPECTED = {
    "found": "ok",
    "chunked": "ok",
    "close-delimited body": "ok",
    "interim 100 first": "ok",
    "undecodable": Code.INVALID_ARGUMENT,
    "too large": Code.RESOURCE_EXHAUSTED,
    "connect error": Code.FAILED_PRECONDITION,
    "error without json": Code.UNAVAILABLE,
    "not http": Code.UNAVAILABLE,
    "head too large": Code.UNAVAILABLE,
}


def expected(name: str, got: tuple[Any, ...]) -> bool:
    """Whether ``got`` is what `EXPECTED` says answer ``name`` gives (True if it says none)."""
    want = EXPECTED.get(name)
    return want is None or got[0] == want or got[1] == want


@pytest.mark.parametrize("name", sorted(ANSWERS))
async def test_every_answer_reads_as_connectrpc_reads_it(name: str) -> None:
    async with canned(lambda _: ANSWERS[name]) as (url, server), http_client(url) as http:
        options = {"read_max_bytes": READ_MAX}
        ours = connect_client(KVServiceClient, url, http, **options)
        theirs = connectrpc_client(url, http, **options)
        request = pb.GetRequest(key="k")
        got = await outcome(ours.get(request))
        assert got == await outcome(theirs.get(request))
        assert expected(name, got), got
        if name == "connect error":  # the details travel too
            assert got[3] == [("kv.v1.WatchEvent", b"\n\x02k1")]
        assert header_lines(server.requests[0]) == header_lines(server.requests[1])


async def test_a_closed_connection_fails_as_unavailable_on_both() -> None:
    async with canned(lambda _: None) as (url, _server), http_client(url) as http:
        ours = await outcome(connect_client(KVServiceClient, url, http).get(pb.GetRequest()))
        theirs = await outcome(connectrpc_client(url, http).get(pb.GetRequest()))
    assert ours == theirs
    assert ours[1] == Code.UNAVAILABLE


async def test_the_same_request_bytes_with_a_deadline_and_the_same_metadata() -> None:
    answer = response(
        200, [("content-type", PROTO), ("x-served-by", "canned"), ("trailer-x-t", "t")], FOUND
    )
    async with canned(lambda _: answer) as (url, server), http_client(url) as http:
        results = []
        for client in (
            connect_client(KVServiceClient, url, http, timeout_ms=2_000),
            connectrpc_client(url, http, timeout_ms=2_000),
        ):
            with ResponseMetadata() as meta:
                await client.get(pb.GetRequest(key="k"))
            results.append((meta.headers.get("x-served-by"), meta.trailers.get("x-t")))
    ours, theirs = server.requests
    assert header_lines(ours) == header_lines(theirs)
    assert ours.split(b"\r\n\r\n", 1)[1] == theirs.split(b"\r\n\r\n", 1)[1]
    assert b"connect-timeout-ms: 2000\r\n" in ours
    assert results == [("canned", "t"), ("canned", "t")]


async def test_unary_calls_skip_connectrpcs_send_and_the_generic_fetch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with canned(lambda _: ANSWERS["found"]) as (url, _), http_client(url) as http:
        client = connect_client(KVServiceClient, url, http)
        assert isinstance(client, KVServiceClient)
        assert type(client).__name__ == "KVServiceClient"

        async def refused(*args: object, **kwargs: object) -> object:
            raise AssertionError("the generic path was taken")

        monkeypatch.setattr(H1Transport, "fetch", refused)
        got = await client.get(pb.GetRequest(key="k"))
    assert got.found


async def test_interceptors_and_per_call_headers_go_out_on_the_short_path_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    class Tag(MetadataInterceptor[None]):
        async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
            ctx.request_headers["x-tag"] = "tagged"

        async def on_end(
            self, token: None, ctx: RequestContext[Any, Any], error: Exception | None
        ) -> None:
            seen.append("ok" if error is None else type(error).__name__)

    async with canned(lambda _: ANSWERS["found"]) as (url, server), http_client(url) as http:
        monkeypatch.setattr(H1Transport, "fetch", None)  # any use of it would fail
        tagged = connect_client(KVServiceClient, url, http, interceptors=[Tag()])
        assert (await tagged.get(pb.GetRequest(key="k"))).found
        plain = connect_client(KVServiceClient, url, http)
        assert (await plain.get(pb.GetRequest(key="k"), headers={"x-call": "1"})).found
    assert seen == ["ok"]
    assert b"x-tag: tagged\r\n" in server.requests[0]
    assert b"x-call: 1\r\n" in server.requests[1]


async def test_a_deadline_that_passes_is_deadline_exceeded_and_drops_the_connection() -> None:
    hung_up = asyncio.Event()

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the caller gives up and closes
        writer.close()
        hung_up.set()

    server = await asyncio.start_server(never, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with http_client(url) as http:
            client = connect_client(KVServiceClient, url, http, timeout_ms=50)
            late = await outcome(client.get(pb.GetRequest(key="k")))
            assert late[:3] == ("error", Code.DEADLINE_EXCEEDED, "Request timed out")
            async with asyncio.timeout(IO_TIMEOUT):
                await hung_up.wait()  # the cut call's connection was closed, not pooled
            spent = await outcome(client.get(pb.GetRequest(key="k"), timeout_ms=0))
            assert spent[:2] == ("error", Code.DEADLINE_EXCEEDED)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_body_over_the_inline_size_still_arrives() -> None:
    async with canned(lambda _: ANSWERS["found"]) as (url, server), http_client(url) as http:
        client = connect_client(KVServiceClient, url, http)
        big = pb.PutRequest(key="k", value=b"x" * (INLINE_BODY_BYTES + 1))
        await client.put(big)
    assert server.requests[0].endswith(big.SerializeToString())


# -- the sync clients: the same answers through SyncUnaryWire ---------------------------------


def connectrpc_sync_client(
    url: str, http: PluginSyncHTTPClient, **options: Any
) -> KVServiceClientSync:
    """connectrpc's own sync client on the same transport, configured as `connect_client`."""
    return KVServiceClientSync(
        url, http_client=http.client, send_compression=None, accept_compression=[], **options
    )


async def sync_outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """`outcome` of a blocking call, made on a thread while the loop serves."""

    async def in_thread() -> Any:
        return await asyncio.to_thread(call)

    return await outcome(in_thread())


@pytest.mark.parametrize("name", sorted(ANSWERS))
async def test_every_answer_reads_as_connectrpc_reads_it_on_the_sync_client(name: str) -> None:
    async with canned(lambda _: ANSWERS[name]) as (url, server):
        with sync_http_client(url) as http:
            ours = connect_client(KVServiceClientSync, url, http, read_max_bytes=READ_MAX)
            theirs = connectrpc_sync_client(url, http, read_max_bytes=READ_MAX)
            request = pb.GetRequest(key="k")
            got = await sync_outcome(lambda: ours.get(request))
            assert got == await sync_outcome(lambda: theirs.get(request))
            assert expected(name, got), got
    assert header_lines(server.requests[0]) == header_lines(server.requests[1])


async def test_the_sync_client_skips_pyqwest_and_keeps_deadlines_and_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = response(200, [("content-type", PROTO), ("x-served-by", "canned")], FOUND)
    async with canned(lambda _: answer) as (url, server):
        with sync_http_client(url) as http:
            client = connect_client(KVServiceClientSync, url, http, timeout_ms=2_000)
            assert type(client).__name__ == "KVServiceClientSync"
            monkeypatch.setattr(SyncH1Transport, "execute_sync", None)  # the generic path

            def call() -> tuple[bool, str | None]:
                with ResponseMetadata() as meta:
                    got = client.get(pb.GetRequest(key="k"))
                return got.found, meta.headers.get("x-served-by")

            assert await asyncio.to_thread(call) == (True, "canned")
    assert b"connect-timeout-ms: 2000\r\n" in server.requests[0]


async def test_a_sync_call_past_its_deadline_is_deadline_exceeded() -> None:
    hung_up = asyncio.Event()

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.close()
        hung_up.set()

    server = await asyncio.start_server(never, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        with sync_http_client(url) as http:
            client = connect_client(KVServiceClientSync, url, http, timeout_ms=50)
            late = await sync_outcome(lambda: client.get(pb.GetRequest(key="k")))
            assert late[:3] == ("error", Code.DEADLINE_EXCEEDED, "Request timed out")
            async with asyncio.timeout(IO_TIMEOUT):
                await hung_up.wait()  # the cut call's connection was closed, not pooled
    finally:
        server.close()
        await server.wait_closed()


# -- clients whose server moves, and routed clients ------------------------------------------


async def test_a_plugins_client_follows_its_endpoint_on_the_short_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = EndpointClient("kv")
    client = endpoint.client(KVServiceClient)
    unbound = await outcome(client.get(pb.GetRequest(key="k")))
    assert unbound[:2] == ("error", Code.UNAVAILABLE)
    assert "not started" in unbound[2]
    async with (
        canned(lambda _: ANSWERS["found"]) as (first_url, first),
        canned(lambda _: ANSWERS["found"]) as (second_url, second),
    ):
        monkeypatch.setattr(H1Transport, "fetch", None)  # any use of it would fail
        endpoint.bind(target_for(first_url))
        assert (await client.get(pb.GetRequest(key="k"))).found
        await close_target(endpoint.bind(target_for(second_url)))  # the plugin restarted
        assert (await client.get(pb.GetRequest(key="k"))).found
        await close_target(endpoint.unbind("crashed"))
        gone = await outcome(client.get(pb.GetRequest(key="k")))
    assert [len(first.requests), len(second.requests)] == [1, 1]
    assert gone[:2] == ("error", Code.UNAVAILABLE)
    assert "crashed" in gone[2]


async def test_a_routed_client_sends_to_its_route_with_the_callers_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with canned(lambda _: ANSWERS["found"]) as (url, server), http_client(url) as http:
        host = HostClient(url, http_client=http)
        host.identity = RuntimeIdentity("app-1", "secret-token")
        endpoint = registry_pb2.ServiceEndpoint(endpoint_url="/services/kv/kv-1")
        client = host.routed_client(KVServiceClient, endpoint)
        monkeypatch.setattr(H1Transport, "fetch", None)  # any use of it would fail
        for _ in range(2):  # the second call reuses the head made for the first
            assert (await client.get(pb.GetRequest(key="k"))).found
    for request in server.requests:
        assert request.startswith(b"POST /services/kv/kv-1/kv.v1.KVService/Get HTTP/1.1\r\n")
        assert b"authorization: Bearer secret-token\r\n" in request
        assert b"x-plugin-runtime-id: app-1\r\n" in request
