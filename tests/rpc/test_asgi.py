"""ServiceMux: routing, per-protocol errors, body limits and lifespan, on a real hypercorn."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.protocol import ProtocolType
from pyqwest import Client, HTTPTransport, HTTPVersion
from pyqwest.testing import ASGITransport

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from plugin_di.gen.grpc.health.v1.health_connect import HealthClient
from plugin_di.gen.grpc.health.v1.health_pb2 import HealthCheckRequest
from plugin_di.rpc.asgi import ServiceMux
from plugin_di.rpc.serving import bind_socket, serve
from tests.support.kv import KV

PROTOCOLS = [ProtocolType.CONNECT, ProtocolType.GRPC, ProtocolType.GRPC_WEB]


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1:0; yield its base URL."""
    bound = bind_socket("127.0.0.1:0")
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(app, bound, shutdown=stop, ready=ready.set))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield bound.url
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def h2_client() -> AsyncIterator[Client]:
    transport = HTTPTransport(http_version=HTTPVersion.HTTP2)
    try:
        yield Client(transport)
    finally:
        await transport.aclose()
        await asyncio.sleep(0.05)  # lets pyqwest's tokio threads settle (exit-abort workaround)


def kv_client(url: str, http: Client, protocol: ProtocolType) -> KVServiceClient:
    return KVServiceClient(
        url, http_client=http, protocol=protocol, send_compression=None, accept_compression=[]
    )


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Client]]:
    mux = ServiceMux([KVServiceASGIApplication(KV())], max_message_bytes=64 * 1024)
    async with served(mux) as url, h2_client() as http:
        yield url, http


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_protocol_reaches_the_service_through_the_mux(
    server: tuple[str, Client], protocol: ProtocolType
) -> None:
    url, http = server
    client = kv_client(url, http, protocol)
    await client.put(pb.PutRequest(key="a/1", value=b"one"))
    await client.put(pb.PutRequest(key="a/2", value=b"two"))
    got = await client.get(pb.GetRequest(key="a/1"))
    assert (got.value, got.found) == (b"one", True)
    events = [e async for e in client.watch(pb.WatchRequest(prefix="a/"))]
    assert [(e.key, e.value) for e in events] == [("a/1", b"one"), ("a/2", b"two")]
    assert list((await client.list(pb.ListRequest(prefix="a/"))).keys) == ["a/1", "a/2"]


async def test_connect_json_and_http1_work() -> None:
    mux = ServiceMux([KVServiceASGIApplication(KV())])
    transport = HTTPTransport(http_version=HTTPVersion.HTTP1)
    async with served(mux) as url:
        http = Client(transport)
        put = await http.post(
            f"{url}/kv.v1.KVService/Put",
            headers={"content-type": "application/json"},
            content=b'{"key": "k", "value": "dg=="}',
        )
        assert put.status == 200
        got = await http.post(
            f"{url}/kv.v1.KVService/Get",
            headers={"content-type": "application/json"},
            content=b'{"key": "k"}',
        )
        assert got.status == 200
        assert json.loads(got.content) == {"value": "dg==", "found": True}
        await transport.aclose()
        await asyncio.sleep(0.05)


def _unknown_method(name: str) -> MethodInfo[Any, Any]:
    return MethodInfo(
        name=name,
        service_name="kv.v1.KVService",
        input=pb.GetRequest,
        output=pb.GetResponse,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.UNARY,
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_unknown_method_is_unimplemented_in_each_protocol(
    server: tuple[str, Client], protocol: ProtocolType
) -> None:
    url, http = server
    client = kv_client(url, http, protocol)
    with pytest.raises(ConnectError) as method_err:
        await client.execute_unary(
            request=pb.GetRequest(key="x"), method=_unknown_method("Nope"), headers=None
        )
    assert method_err.value.code == Code.UNIMPLEMENTED
    assert "/kv.v1.KVService/Nope" in method_err.value.message
    health = HealthClient(
        url, http_client=http, protocol=protocol, send_compression=None, accept_compression=[]
    )
    with pytest.raises(ConnectError) as service_err:
        await health.check(HealthCheckRequest(service=""))
    assert service_err.value.code == Code.UNIMPLEMENTED


async def test_unknown_method_wire_format_per_protocol(server: tuple[str, Client]) -> None:
    url, http = server
    target = f"{url}/kv.v1.KVService/Nope"
    connect = await http.post(target, headers={"content-type": "application/proto"}, content=b"")
    assert connect.status == 404
    assert json.loads(connect.content)["code"] == "unimplemented"

    grpc = await http.post(
        target, headers={"content-type": "application/grpc", "te": "trailers"}, content=b""
    )
    assert grpc.status == 200
    assert (grpc.headers.get("grpc-status") or grpc.trailers.get("grpc-status")) == "12"

    web = await http.post(target, headers={"content-type": "application/grpc-web+proto"})
    assert web.status == 200
    body = web.content
    assert body[0] == 0x80
    (length,) = struct.unpack(">I", body[1:5])
    assert b"grpc-status: 12" in body[5 : 5 + length]

    stream = await http.post(target, headers={"content-type": "application/connect+proto"})
    assert stream.status == 200
    assert stream.content[0] == 0x02
    assert json.loads(stream.content[5:])["error"]["code"] == "unimplemented"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_oversized_body_is_resource_exhausted(
    server: tuple[str, Client], protocol: ProtocolType
) -> None:
    url, http = server
    client = kv_client(url, http, protocol)
    for size in (65 * 1024, 1024 * 1024):  # the second is far beyond HTTP/2's flow window
        with pytest.raises(ConnectError) as err:
            await client.put(pb.PutRequest(key="big", value=b"x" * size))
        assert err.value.code == Code.RESOURCE_EXHAUSTED
        assert "exceeds the limit of 65536 bytes" in err.value.message
        # The unread body was discarded: the same connection still serves the next call.
        assert (await client.get(pb.GetRequest(key="big"))).found is False


async def test_huge_content_length_is_refused_before_the_body_is_read(
    server: tuple[str, Client],
) -> None:
    url, _ = server
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /kv.v1.KVService/Put HTTP/1.1\r\nhost: x\r\n"
        b"content-type: application/proto\r\ncontent-length: 1000000000000\r\n\r\n"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 429")


async def test_limit_is_passed_down_for_bodies_without_content_length() -> None:
    app = KVServiceASGIApplication(KV())
    mux = ServiceMux([app], max_message_bytes=1024)
    message = pb.PutRequest(key="k", value=b"v" * 4096).SerializeToString()
    sent: list[dict[str, Any]] = []
    chunks = [message[:100], message[100:]]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/kv.v1.KVService/Put",
        "root_path": "",
        "headers": [(b"content-type", b"application/proto")],
        "query_string": b"",
        "extensions": {"http.response.trailers": {}},
    }
    await mux(scope, receive, send)
    assert sent[0]["status"] == 429
    assert json.loads(sent[1]["body"])["code"] == "resource_exhausted"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/proto", b"\xff\xff\xff\xff"),
        ("application/json", b"{not json"),
        ("application/grpc", b"\x00\x00\x00\x00\x04\xff\xff\xff\xff"),
        ("application/grpc-web+proto", b"\x00\x00\x00\x00\x04\xff\xff\xff\xff"),
    ],
)
async def test_malformed_body_is_invalid_argument(
    server: tuple[str, Client], content_type: str, body: bytes
) -> None:
    url, http = server
    headers = {"content-type": content_type, "te": "trailers"}
    response = await http.post(f"{url}/kv.v1.KVService/Get", headers=headers, content=body)
    if content_type.startswith("application/grpc-web"):
        assert b"grpc-status: 3" in response.content
    elif content_type.startswith("application/grpc"):
        status = response.headers.get("grpc-status") or response.trailers.get("grpc-status")
        assert status == "3"
    else:
        assert response.status == 400
        assert json.loads(response.content)["code"] == "invalid_argument"


async def test_unhandled_exception_does_not_stop_the_server(server: tuple[str, Client]) -> None:
    url, http = server
    client = kv_client(url, http, ProtocolType.CONNECT)
    with pytest.raises(ConnectError):
        await client.get(pb.GetRequest(key="boom"))
    assert (await client.get(pb.GetRequest(key="other"))).found is False


async def test_plain_routes_are_mounted_by_prefix() -> None:
    seen: list[tuple[str, str]] = []

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["path"], scope["root_path"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain"})

    mux = ServiceMux([KVServiceASGIApplication(KV())])
    mux.mount("/services/", plain)
    async with ASGITransport(mux) as transport:
        http = Client(transport)
        response = await http.post("http://x/services/kv/p1/kv.v1.KVService/Get", content=b"")
        assert response.status == 200
        assert response.content == b"plain"
        # A service path still reaches the service, not the route.
        client = kv_client("http://x", http, ProtocolType.CONNECT)
        assert (await client.get(pb.GetRequest(key="k"))).found is False
    assert seen == [("/services/kv/p1/kv.v1.KVService/Get", "/services")]


async def test_lifespan_reaches_every_app() -> None:
    events: list[str] = []

    async def service() -> AsyncIterator[KV]:
        events.append("kv up")
        try:
            yield KV()
        finally:  # connectrpc closes the generator with aclose()
            events.append("kv down")

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    async def no_lifespan(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("lifespan not supported")

    mux = ServiceMux([KVServiceASGIApplication(service())])
    mux.mount("/plain/", plain)
    mux.mount("/other/", no_lifespan)
    async with served(mux) as url, h2_client() as http:
        client = kv_client(url, http, ProtocolType.CONNECT)
        assert (await client.get(pb.GetRequest(key="k"))).found is False
    assert sorted(events) == sorted(["kv up", "lifespan.startup", "kv down", "lifespan.shutdown"])


async def test_failed_startup_is_reported_and_started_apps_are_shut_down() -> None:
    events: list[str] = []

    async def broken() -> AsyncIterator[KV]:
        raise RuntimeError("cannot open database")
        yield KV()  # pragma: no cover

    async def good() -> AsyncIterator[KV]:
        events.append("good up")
        try:
            yield KV()
        finally:
            events.append("good down")

    class Other(KVServiceASGIApplication):
        @property
        def path(self) -> str:
            return "/other.v1.Other"

    mux = ServiceMux([Other(good()), KVServiceASGIApplication(broken())])
    sent: list[dict[str, Any]] = []
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(mux({"type": "lifespan"}, inbox.get, send), 5)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "cannot open database" in sent[0]["message"]
    assert events == ["good up", "good down"]


def test_a_service_mounted_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="mounted twice"):
        ServiceMux([KVServiceASGIApplication(KV()), KVServiceASGIApplication(KV())])


def _iter_methods() -> Iterator[str]:
    yield from ("Get", "Put", "Delete", "Watch", "List")


def test_methods_are_known_from_descriptors() -> None:
    mux = ServiceMux([KVServiceASGIApplication(KV())])
    assert mux.service_names == ["kv.v1.KVService"]
    assert sorted(mux._methods) == sorted(f"/kv.v1.KVService/{m}" for m in _iter_methods())


async def test_an_app_failing_before_answering_gets_internal_without_its_text() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("secret=hunter2")

    mux = ServiceMux()
    mux.mount("/broken/", broken)
    async with served(mux) as url, h2_client() as http:
        connect = await http.post(f"{url}/broken/x", headers={"content-type": "application/proto"})
        assert connect.status == 500
        assert json.loads(connect.content) == {"code": "internal", "message": "internal error"}
        grpc = await http.post(
            f"{url}/broken/x", headers={"content-type": "application/grpc", "te": "trailers"}
        )
        # a trailers-only response: the status is in the one HEADERS frame that ends the stream
        assert grpc.headers.get("grpc-status") == "13"
        assert grpc.content == b""
        assert b"hunter2" not in connect.content


async def test_malformed_content_length_on_a_method_route_is_invalid_argument() -> None:
    from examples.kv.store import KVStore

    store = KVStore()
    await store.put(pb.PutRequest(key="k", value=b"v"), None)  # type: ignore[arg-type]
    mux = ServiceMux([KVServiceASGIApplication(store)])
    body = pb.GetRequest(key="k").SerializeToString()

    async def call(length: bytes) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any) -> None:
            sent.append(dict(message))

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/kv.v1.KVService/Get",
            "query_string": b"",
            "headers": [
                (b"content-type", b"application/proto"),
                (b"connect-protocol-version", b"1"),
                (b"content-length", length),
            ],
        }
        await mux(scope, receive, send)
        return sent

    bad = await call(b"12x")
    assert bad[0]["status"] == 400
    assert json.loads(bad[1]["body"]) == {
        "code": "invalid_argument",
        "message": "malformed Content-Length header",
    }
    good = await call(str(len(body)).encode())
    assert good[0]["status"] == 200
    assert pb.GetResponse.FromString(b"".join(m.get("body", b"") for m in good[1:])).found
