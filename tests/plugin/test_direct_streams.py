"""Direct dispatch of client-streaming and bidi methods (and of protobuf-py messages)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from connectrpc.client import ConnectClient
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_codecs
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from connectrpc_grpcreflect import (
    ServerReflectionASGIApplication,
    ServerReflectionService,
)
from connectrpc_grpcreflect._gen.grpc.reflection.v1 import reflection_pb as refl
from connectrpc_grpcreflect._gen.grpc.reflection.v1.reflection_connect import (
    ServerReflectionClient,
)
from protobuf import Oneof

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from plugin_di.plugin.definition import Service
from plugin_di.plugin.direct import direct_client
from plugin_di.plugin.reflection import reflection_descriptors

COLLECT: MethodInfo[pb.GetRequest, pb.ListResponse] = MethodInfo(
    name="Collect",
    service_name="test.v1.Collector",
    input=pb.GetRequest,
    output=pb.ListResponse,
    idempotency_level=IdempotencyLevel.UNKNOWN,
    stream_type=StreamType.CLIENT_STREAM,
)


class Collector:
    def __init__(self) -> None:
        self.received: list[pb.GetRequest] = []

    async def collect(
        self, requests: AsyncIterator[pb.GetRequest], ctx: RequestContext[Any, Any]
    ) -> pb.ListResponse:
        async for request in requests:
            if request.key == "boom":
                raise KeyError("secret")
            self.received.append(request)
        return pb.ListResponse(keys=[r.key for r in self.received])


class CollectorApplication(ConnectASGIApplication[Collector]):
    """Hand-written the way protoc-gen-connectrpc writes one (no proto has a client stream)."""

    def __init__(self, service: Collector, *, interceptors: Iterable[Any] = (), **_: Any) -> None:
        super().__init__(
            service=service,
            endpoints=lambda svc: {
                "/test.v1.Collector/Collect": Endpoint.client_stream(
                    method=COLLECT, function=svc.collect
                )
            },
            interceptors=interceptors,
            codecs=google_protobuf_codecs(),
        )

    @property
    def path(self) -> str:
        return "/test.v1.Collector"


class CollectorClient(ConnectClient):
    async def collect(self, requests: AsyncIterator[pb.GetRequest]) -> pb.ListResponse:
        return await self.execute_client_stream(request=requests, method=COLLECT)


async def _requests(*keys: str) -> AsyncIterator[pb.GetRequest]:
    for key in keys:
        yield pb.GetRequest(key=key)


async def test_client_stream() -> None:
    impl = Collector()
    client = direct_client(Service(CollectorApplication, CollectorClient, impl))
    response = await client.collect(_requests("a", "b"))
    assert list(response.keys) == ["a", "b"]
    assert [r.key for r in impl.received] == ["a", "b"]
    with pytest.raises(ConnectError) as info:
        await client.collect(_requests("c", "boom"))
    assert info.value.code == Code.INTERNAL
    assert "secret" not in info.value.message


async def test_bidi_stream_with_protobuf_py_messages() -> None:
    [kv] = reflection_descriptors([pb.DESCRIPTOR.services_by_name["KVService"]])
    service = Service(
        ServerReflectionASGIApplication, ServerReflectionClient, ServerReflectionService(kv)
    )
    client = direct_client(service)

    async def ask() -> AsyncIterator[refl.ServerReflectionRequest]:
        yield refl.ServerReflectionRequest(message_request=Oneof("list_services", ""))
        yield refl.ServerReflectionRequest(
            message_request=Oneof("file_containing_symbol", "kv.v1.KVService.Watch")
        )

    answers = [a async for a in client.server_reflection_info(ask())]
    listed = {s.name for s in answers[0].message_response.value.service}
    assert "kv.v1.KVService" in listed
    assert answers[1].message_response.field == "file_descriptor_response"
