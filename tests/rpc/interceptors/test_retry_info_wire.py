"""The rate limiter's ``google.rpc.RetryInfo`` detail, read by other implementations.

The detail is googleapis-common-protos' generated ``RetryInfo``; these tests pin its bytes to
the ones the former hand-written encoder sent, decode it with the generated message, and read
it through grpcio's own status helpers from a real gRPC call to a served plugin-di app.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from grpc_status import rpc_status
from protobuf.wkt import Any as AnyMessage

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication
from plugin_di.clock import FakeClock
from plugin_di.rpc.interceptors.ratelimit import (
    RETRY_INFO_TYPE,
    Rate,
    RateLimitInterceptor,
    RateLimitPolicy,
    retry_after_detail,
    retry_after_of,
)
from tests.support.kv import KV
from tests.support.servers import running

# What the hand-written varint encoder (before googleapis-common-protos) sent for each delay.
HAND_ENCODED = {
    0.0: "0a00",
    0.001: "0a0410c0843d",
    0.5: "0a061080cab5ee01",
    2.25: "0a0708021080e59a77",
    86400.0: "0a040880a305",
    1.9999999999: "0a08080110ff93ebdc03",  # nanos round to 1e9: capped at 999,999,999
    3e9: "0a060880bcc1960b",
}


@pytest.mark.parametrize(("seconds", "wire"), HAND_ENCODED.items())
def test_the_detail_keeps_its_bytes_and_decodes_as_retry_info(seconds: float, wire: str) -> None:
    detail = retry_after_detail(seconds)
    assert detail.type_name == RETRY_INFO_TYPE == "google.rpc.RetryInfo"
    assert detail.message_bytes.hex() == wire
    delay = RetryInfo.FromString(detail.message_bytes).retry_delay
    assert delay.seconds + delay.nanos / 1e9 == pytest.approx(seconds)
    error = ConnectError(Code.RESOURCE_EXHAUSTED, "x", [detail])
    assert retry_after_of(error) == pytest.approx(seconds)


def test_a_detail_from_another_encoder_is_read_and_a_malformed_one_ignored() -> None:
    def error_with(value: bytes) -> ConnectError:
        packed = AnyMessage(type_url="type.googleapis.com/google.rpc.RetryInfo", value=value)
        return ConnectError(Code.RESOURCE_EXHAUSTED, "x", [ErrorDetail(packed)])

    foreign = RetryInfo(retry_delay=Duration(seconds=7, nanos=125_000_000))
    assert retry_after_of(error_with(foreign.SerializeToString())) == pytest.approx(7.125)
    assert retry_after_of(error_with(b"\x0a\x05\x08")) is None  # truncated Duration
    assert retry_after_of(ConnectError(Code.RESOURCE_EXHAUSTED, "no detail")) is None


async def test_grpcio_reads_the_retry_info_of_a_rate_limited_call() -> None:
    clock = FakeClock()
    limiter = RateLimitInterceptor(RateLimitPolicy(Rate(4, 1)), clock=clock)
    app = KVServiceASGIApplication(KV(), interceptors=[limiter])

    def call_twice(target: str) -> grpc.RpcError:
        with grpc.insecure_channel(target) as channel:
            get = channel.unary_unary(
                "/kv.v1.KVService/Get",
                request_serializer=kv_pb2.GetRequest.SerializeToString,
                response_deserializer=kv_pb2.GetResponse.FromString,
            )
            get(kv_pb2.GetRequest(key="a"), timeout=10)
            with pytest.raises(grpc.RpcError) as info:
                get(kv_pb2.GetRequest(key="a"), timeout=10)
            return info.value

    async with running(app) as (_, host, port):
        error = await asyncio.to_thread(call_twice, f"{host}:{port}")
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(error)
    assert status is not None
    assert [d.type_url for d in status.details] == ["type.googleapis.com/google.rpc.RetryInfo"]
    info = RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay == Duration(nanos=250_000_000)
