"""SanitizeErrors and error details, over the wire in all three protocols."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from connectrpc.request import RequestContext
from pyqwest import Client
from pyqwest.testing import ASGITransport

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVService, KVServiceASGIApplication, KVServiceClient
from plugin_di.rpc.asgi import ServiceMux
from plugin_di.rpc.errors import INTERNAL_MESSAGE, SanitizeErrors, pack_detail, unpack_detail

SECRET = "db password=hunter2"
PROTOCOLS = [ProtocolType.CONNECT, ProtocolType.GRPC, ProtocolType.GRPC_WEB]


class FailingKV(KVService):
    """Raises on purpose: a plain exception, a deliberate ConnectError, mid-stream failures."""

    async def get(self, request: pb.GetRequest, ctx: RequestContext[Any, Any]) -> pb.GetResponse:
        if request.key == "missing":
            raise ConnectError(
                Code.NOT_FOUND,
                "no key 'missing'",
                details=[pack_detail(pb.WatchEvent(key="missing", value=b"why"))],
            )
        raise ValueError(SECRET)

    async def watch(
        self, request: pb.WatchRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.WatchEvent]:
        yield pb.WatchEvent(key="first")
        if request.prefix == "connect-error":
            raise ConnectError(Code.FAILED_PRECONDITION, "stream stopped on purpose")
        raise KeyError(SECRET)


async def _client(protocol: ProtocolType) -> AsyncIterator[KVServiceClient]:
    app = KVServiceASGIApplication(FailingKV(), interceptors=[SanitizeErrors()])
    async with ASGITransport(ServiceMux([app])) as transport:
        yield KVServiceClient(
            "http://kv",
            http_client=Client(transport),
            protocol=protocol,
            send_compression=None,
            accept_compression=[],
        )


@pytest.fixture(params=PROTOCOLS, ids=lambda p: p.name)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[KVServiceClient]:
    async for c in _client(request.param):
        yield c


async def test_unary_exception_is_internal_and_logged_not_sent(
    client: KVServiceClient, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="plugin_di.rpc.errors"),
        pytest.raises(ConnectError) as err,
    ):
        await client.get(pb.GetRequest(key="x"))
    assert err.value.code == Code.INTERNAL
    assert err.value.message == INTERNAL_MESSAGE
    assert "hunter2" not in str(err.value)
    [record] = [r for r in caplog.records if r.name == "plugin_di.rpc.errors"]
    assert record.levelno == logging.ERROR
    assert "kv.v1.KVService/Get" in record.getMessage()
    assert record.exc_info is not None
    assert "hunter2" in caplog.text  # the detail, with its traceback, stays on the server
    assert "Traceback" in caplog.text


async def test_connect_error_passes_unchanged_with_details(client: KVServiceClient) -> None:
    with pytest.raises(ConnectError) as err:
        await client.get(pb.GetRequest(key="missing"))
    assert err.value.code == Code.NOT_FOUND
    assert err.value.message == "no key 'missing'"
    detail = unpack_detail(err.value, pb.WatchEvent)
    assert detail is not None
    assert (detail.key, detail.value) == ("missing", b"why")
    assert unpack_detail(err.value, pb.GetRequest) is None


async def test_stream_exception_mid_stream_is_internal(client: KVServiceClient) -> None:
    received: list[str] = []
    with pytest.raises(ConnectError) as err:
        await _drain(client.watch(pb.WatchRequest(prefix="")), received, lambda e: e.key)
    assert received == ["first"]
    assert err.value.code == Code.INTERNAL
    assert "hunter2" not in err.value.message


async def test_stream_connect_error_passes_unchanged(client: KVServiceClient) -> None:
    with pytest.raises(ConnectError) as err:
        async for _ in client.watch(pb.WatchRequest(prefix="connect-error")):
            pass
    assert err.value.code == Code.FAILED_PRECONDITION
    assert err.value.message == "stream stopped on purpose"


async def _drain(stream: AsyncIterator[Any], out: list[Any], key: Any) -> None:
    async for item in stream:
        out.append(key(item))


def _ctx() -> Any:
    return SimpleNamespace(method=SimpleNamespace(service_name="t.v1.T", name="M"))


async def _requests() -> AsyncIterator[int]:
    for i in range(3):
        yield i


async def test_client_and_bidi_streams_are_sanitized() -> None:
    sanitize = SanitizeErrors()

    async def client_stream(requests: AsyncIterator[int], ctx: Any) -> int:
        total = sum([r async for r in requests])
        raise RuntimeError(f"{SECRET} {total}")

    async def bidi(requests: AsyncIterator[int], ctx: Any) -> AsyncIterator[int]:
        async for r in requests:
            yield r * 10
        raise OSError(SECRET)

    with pytest.raises(ConnectError) as err:
        await sanitize.intercept_client_stream(client_stream, _requests(), _ctx())
    assert (err.value.code, err.value.message) == (Code.INTERNAL, INTERNAL_MESSAGE)

    out: list[int] = []
    with pytest.raises(ConnectError) as err:
        await _drain(sanitize.intercept_bidi_stream(bidi, _requests(), _ctx()), out, lambda v: v)
    assert out == [0, 10, 20]
    assert (err.value.code, err.value.message) == (Code.INTERNAL, INTERNAL_MESSAGE)


def test_sync_variants_are_sanitized() -> None:
    sanitize = SanitizeErrors()

    def unary(request: int, ctx: Any) -> int:
        raise ValueError(SECRET)

    def stream(request: int, ctx: Any) -> Iterator[int]:
        yield request
        raise ValueError(SECRET)

    def deliberate(request: int, ctx: Any) -> int:
        raise ConnectError(Code.ABORTED, "try again")

    with pytest.raises(ConnectError) as err:
        sanitize.intercept_unary_sync(unary, 1, _ctx())
    assert err.value.code == Code.INTERNAL
    with pytest.raises(ConnectError) as err:
        sanitize.intercept_unary_sync(deliberate, 1, _ctx())
    assert err.value.code == Code.ABORTED
    out: list[int] = []
    with pytest.raises(ConnectError) as err:
        out.extend(sanitize.intercept_server_stream_sync(stream, 7, _ctx()))
    assert out == [7]
    assert err.value.code == Code.INTERNAL
    with pytest.raises(ConnectError) as err:
        sanitize.intercept_client_stream_sync(lambda reqs, ctx: unary(0, ctx), iter([1]), _ctx())
    assert err.value.code == Code.INTERNAL
    with pytest.raises(ConnectError) as err:
        list(
            sanitize.intercept_bidi_stream_sync(lambda reqs, ctx: stream(0, ctx), iter([]), _ctx())
        )
    assert err.value.code == Code.INTERNAL


async def test_cancellation_is_not_turned_into_internal() -> None:
    sanitize = SanitizeErrors()

    async def slow(request: int, ctx: Any) -> int:
        await asyncio.sleep(10)
        return request

    task = asyncio.create_task(sanitize.intercept_unary(slow, 1, _ctx()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_pack_detail_type_url() -> None:
    detail = pack_detail(pb.GetRequest(key="k"))
    assert detail.type_url == "type.googleapis.com/kv.v1.GetRequest"
    assert pb.GetRequest.FromString(detail.value).key == "k"
