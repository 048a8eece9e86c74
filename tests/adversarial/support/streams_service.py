"""A service with every stream kind (server, client, bidi), made at run time for these tests.

The example protos have no client-streaming method, so ``adversarial.v1.Streams`` is
described here (KV messages, a file added to the default descriptor pool, so that
`ServiceMux` routes it by exact method path and reflection can describe it) and served by a
plain ``ConnectASGIApplication``:

- ``Follow(WatchRequest) -> stream WatchEvent``: three events, or INVALID_ARGUMENT for the
  prefix ``bad``;
- ``Collect(stream WatchRequest) -> ListResponse``: the prefixes received;
- ``Chat(stream WatchRequest) -> stream WatchEvent``: one event per request, INVALID_ARGUMENT
  at once for the prefix ``bad`` (while its client still sends).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from connectrpc.code import Code
from connectrpc.compat import google_protobuf_codecs
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import descriptor_pb2, descriptor_pool

from examples.kv.gen.kv.v1 import kv_pb2

from .servers import Method

SERVICE = "adversarial.v1.Streams"
FOLLOW = Method(f"/{SERVICE}/Follow", False, True)
COLLECT = Method(f"/{SERVICE}/Collect", True, False)
CHAT = Method(f"/{SERVICE}/Chat", True, True)
STREAM_METHODS = (FOLLOW, COLLECT, CHAT)


def _descriptor() -> Any:
    pool = descriptor_pool.Default()
    try:
        return pool.FindServiceByName(SERVICE)
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto(
        name="adversarial/v1/streams.proto",
        package="adversarial.v1",
        dependency=[kv_pb2.DESCRIPTOR.name],
        syntax="proto3",
    )
    service = file.service.add(name="Streams")
    for name, output, client, server in [
        ("Follow", "WatchEvent", False, True),
        ("Collect", "ListResponse", True, False),
        ("Chat", "WatchEvent", True, True),
    ]:
        service.method.add(
            name=name,
            input_type=".kv.v1.WatchRequest",
            output_type=f".kv.v1.{output}",
            client_streaming=client,
            server_streaming=server,
        )
    pool.AddSerializedFile(file.SerializeToString())
    return pool.FindServiceByName(SERVICE)


DESCRIPTOR = _descriptor()


class Streams:
    """The implementation."""

    async def follow(
        self, request: kv_pb2.WatchRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[kv_pb2.WatchEvent]:
        if request.prefix == "bad":
            raise ConnectError(Code.INVALID_ARGUMENT, "prefix: must not be 'bad'")
        for i in range(3):
            yield kv_pb2.WatchEvent(key=f"{request.prefix}{i}")

    async def collect(
        self, requests: AsyncIterator[kv_pb2.WatchRequest], ctx: RequestContext[Any, Any]
    ) -> kv_pb2.ListResponse:
        return kv_pb2.ListResponse(keys=[r.prefix async for r in requests])

    async def chat(
        self, requests: AsyncIterator[kv_pb2.WatchRequest], ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[kv_pb2.WatchEvent]:
        async for request in requests:
            if request.prefix == "bad":
                raise ConnectError(Code.INVALID_ARGUMENT, "prefix: must not be 'bad'")
            yield kv_pb2.WatchEvent(key=request.prefix)


def _info(name: str, output: type[Any], kind: StreamType) -> MethodInfo[Any, Any]:
    return MethodInfo(
        name=name,
        service_name=SERVICE,
        input=kv_pb2.WatchRequest,
        output=output,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=kind,
    )


class StreamsASGIApplication(ConnectASGIApplication[Streams]):
    """What protoc-gen-connectrpc would generate for the service."""

    def __init__(self, service: Streams, *, interceptors: Iterable[Any] = ()) -> None:
        super().__init__(
            service=service,
            endpoints=lambda svc: {
                FOLLOW.path: Endpoint.server_stream(
                    method=_info("Follow", kv_pb2.WatchEvent, StreamType.SERVER_STREAM),
                    function=svc.follow,
                ),
                COLLECT.path: Endpoint.client_stream(
                    method=_info("Collect", kv_pb2.ListResponse, StreamType.CLIENT_STREAM),
                    function=svc.collect,
                ),
                CHAT.path: Endpoint.bidi_stream(
                    method=_info("Chat", kv_pb2.WatchEvent, StreamType.BIDI_STREAM),
                    function=svc.chat,
                ),
            },
            interceptors=interceptors,
            codecs=google_protobuf_codecs(),
        )

    @property
    def path(self) -> str:
        return "/" + SERVICE
