"""In-process plugins, direct and ASGI: same typed client, same semantics as over HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from connectrpc.client import ResponseMetadata
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from examples.kv.store import WATCH_STARTED
from plugin_di.plugin.inprocess import Mode, inprocess_client
from plugin_di.rpc.errors import unpack_detail
from tests.support.probe import probe_plugin

MODES: list[Mode] = ["direct", "asgi"]


async def collect(stream: AsyncIterator[pb.WatchEvent], into: list[str]) -> None:
    async for event in stream:
        into.append(event.key)


class AddHeader:
    """Client interceptor: stamps every call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def intercept_unary(
        self, call_next: Any, request: Any, ctx: RequestContext[Any, Any]
    ) -> Any:
        self.calls.append(ctx.method.name)
        ctx.request_headers["x-caller"] = "test"
        return await call_next(request, ctx)

    async def intercept_server_stream(self, call_next: Any, request: Any, ctx: Any) -> Any:
        self.calls.append(ctx.method.name)
        ctx.request_headers["x-caller"] = "test"
        async for message in call_next(request, ctx):
            yield message


class RequireCaller:
    """Server metadata interceptor: rejects calls without x-caller, before the body is read."""

    def __init__(self) -> None:
        self.ended: list[str] = []

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        if ctx.request_headers.get("x-caller") != "test":
            raise ConnectError(Code.UNAUTHENTICATED, "who are you?")

    async def on_end(
        self, token: None, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        self.ended.append(ctx.method.name)


@pytest.mark.parametrize("mode", MODES)
async def test_kv_every_method(mode: Mode) -> None:
    client = inprocess_client(make_plugin(), KVServiceClient, mode=mode)
    assert isinstance(client, KVServiceClient)
    watch = client.watch(pb.WatchRequest(prefix="a"))
    assert (await anext(watch)).key == WATCH_STARTED
    await client.put(pb.PutRequest(key="a1", value=b"v1"))
    await client.put(pb.PutRequest(key="b1", value=b"v2"))
    got = await client.get(pb.GetRequest(key="a1"))
    assert (got.value, got.found) == (b"v1", True)
    assert not (await client.get(pb.GetRequest(key="zz"))).found
    assert list((await client.list(pb.ListRequest(prefix=""))).keys) == ["a1", "b1"]
    assert (await client.delete(pb.DeleteRequest(key="a1"))).found
    assert not (await client.delete(pb.DeleteRequest(key="a1"))).found
    put_event = await anext(watch)
    assert (put_event.type, put_event.key, put_event.value) == (pb.EVENT_TYPE_PUT, "a1", b"v1")
    delete_event = await anext(watch)
    assert (delete_event.type, delete_event.key) == (pb.EVENT_TYPE_DELETE, "a1")
    await watch.aclose()  # type: ignore[attr-defined]
    with pytest.raises(ConnectError) as info:
        await client.put(pb.PutRequest(key="", value=b"x"))
    assert (info.value.code, info.value.message) == (Code.INVALID_ARGUMENT, "key cannot be empty")


async def test_direct_copies_messages_both_ways() -> None:
    plugin, impl = probe_plugin()
    client = inprocess_client(plugin, KVServiceClient)
    request = pb.PutRequest(key="k", value=b"mine")
    await client.put(request)
    request.value = b"changed after the call"
    assert impl.last_put is not None
    assert impl.last_put.value == b"mine"
    assert impl.last_put is not request
    impl.last_put.key = "server side edit"
    assert request.key == "k"
    response = await client.get(pb.GetRequest(key="k"))
    response.value = b"client side edit"
    assert impl.stored.value == b"original"


@pytest.mark.parametrize("mode", MODES)
async def test_interceptors_run_on_both_sides(mode: Mode) -> None:
    plugin, impl = probe_plugin()
    added, required = AddHeader(), RequireCaller()
    client = inprocess_client(
        plugin,
        KVServiceClient,
        mode=mode,
        interceptors=[added],
        server_interceptors=[required],
    )
    with ResponseMetadata() as meta:
        response = await client.get(pb.GetRequest(key="k"))
    assert response.value == b"original"
    assert impl.seen_headers["x-caller"] == "test"
    assert meta.headers.get("x-served-by") == "probe"
    assert meta.trailers.get("x-trailer") == "t"
    events = [e.key async for e in client.watch(pb.WatchRequest(prefix="w"))]
    assert events == ["w0", "w1", "w2"]
    assert added.calls == ["Get", "Watch"]
    assert required.ended == ["Get", "Watch"]

    bare = inprocess_client(
        plugin, KVServiceClient, mode=mode, server_interceptors=[RequireCaller()]
    )
    with pytest.raises(ConnectError) as info:
        await bare.get(pb.GetRequest(key="k"))
    assert (info.value.code, info.value.message) == (Code.UNAUTHENTICATED, "who are you?")


@pytest.mark.parametrize("mode", MODES)
async def test_unhandled_exception_is_generic_internal(
    mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    plugin, _ = probe_plugin()
    client = inprocess_client(plugin, KVServiceClient, mode=mode)
    with caplog.at_level(logging.ERROR), pytest.raises(ConnectError) as info:
        await client.get(pb.GetRequest(key="boom"))
    assert info.value.code == Code.INTERNAL
    assert "hunter2" not in info.value.message
    assert "hunter2" in caplog.text  # logged on the plugin side
    with pytest.raises(ConnectError) as denied:
        await client.get(pb.GetRequest(key="denied"))
    assert (denied.value.code, denied.value.message) == (Code.PERMISSION_DENIED, "not yours")


@pytest.mark.parametrize("mode", MODES)
async def test_stream_error_after_messages(mode: Mode) -> None:
    plugin, _ = probe_plugin()
    client = inprocess_client(plugin, KVServiceClient, mode=mode)
    seen: list[str] = []
    with pytest.raises(ConnectError) as info:
        await collect(client.watch(pb.WatchRequest(prefix="fail")), seen)
    assert seen == ["fail0", "fail1", "fail2"]
    assert info.value.code == Code.INTERNAL
    assert "secret" not in info.value.message


@pytest.mark.parametrize("mode", MODES)
async def test_deadline_exceeded(mode: Mode) -> None:
    plugin, _ = probe_plugin()
    client = inprocess_client(plugin, KVServiceClient, mode=mode)
    with pytest.raises(ConnectError) as info:
        await client.get(pb.GetRequest(key="hang"), timeout_ms=20)
    assert info.value.code == Code.DEADLINE_EXCEEDED
    with pytest.raises(ConnectError) as stream_info:
        await collect(client.watch(pb.WatchRequest(prefix="hang"), timeout_ms=20), [])
    assert stream_info.value.code == Code.DEADLINE_EXCEEDED


@pytest.mark.parametrize("mode", MODES)
async def test_unimplemented_method(mode: Mode) -> None:
    plugin, _ = probe_plugin()
    client = inprocess_client(plugin, KVServiceClient, mode=mode)
    with pytest.raises(ConnectError) as info:
        await client.list(pb.ListRequest())
    assert info.value.code == Code.UNIMPLEMENTED


@pytest.mark.parametrize("mode", MODES)
async def test_oversized_request(mode: Mode) -> None:
    client = inprocess_client(make_plugin(), KVServiceClient, mode=mode, max_message_bytes=64)
    with pytest.raises(ConnectError) as info:
        await client.put(pb.PutRequest(key="k", value=b"x" * 1000))
    assert info.value.code == Code.RESOURCE_EXHAUSTED
    await client.put(pb.PutRequest(key="k", value=b"small"))


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown in-process mode"):
        inprocess_client(make_plugin(), KVServiceClient, mode="carrier-pigeon")


@pytest.mark.parametrize("mode", MODES)
async def test_error_details_survive(mode: Mode) -> None:
    plugin, _ = probe_plugin()
    client = inprocess_client(plugin, KVServiceClient, mode=mode)
    with pytest.raises(ConnectError) as info:
        await client.get(pb.GetRequest(key="detailed"))
    assert (info.value.code, info.value.message) == (Code.FAILED_PRECONDITION, "not now")
    detail = unpack_detail(info.value, pb.WatchEvent)
    assert detail is not None
    assert (detail.key, detail.value) == ("why", b"because")
