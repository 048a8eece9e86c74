"""The interceptor tests' own helpers: in-process KV clients, request contexts, a stepping clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.protocol import ProtocolType
from connectrpc.request import Headers, RequestContext
from pyqwest import Client
from pyqwest.testing import ASGITransport

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import (
    KVServiceASGIApplication,
    KVServiceClient,
)
from plugin_di.clock import FakeClock
from tests.support.kv import KV

__all__ = ["PROTOCOLS", "KVServiceClient", "SteppingClock", "kv_client", "make_ctx", "pb"]

PROTOCOLS = [ProtocolType.CONNECT, ProtocolType.GRPC, ProtocolType.GRPC_WEB]


@contextlib.asynccontextmanager
async def kv_client(
    service: KV,
    *,
    server_interceptors: Sequence[Any] = (),
    client_interceptors: Sequence[Any] = (),
    protocol: ProtocolType = ProtocolType.CONNECT,
    client_host: str = "127.0.0.1",
) -> AsyncIterator[KVServiceClient]:
    """A KV client wired in-process (no sockets) to a server with the given interceptors."""
    app = KVServiceASGIApplication(service, interceptors=server_interceptors)
    async with ASGITransport(app, client=(client_host, 40000)) as transport:
        client = KVServiceClient(
            "http://localhost",
            http_client=Client(transport),
            protocol=protocol,
            interceptors=client_interceptors,
            send_compression=None,
            accept_compression=[],
        )
        try:
            yield client
        finally:
            await client.close()
            await asyncio.sleep(0)


def make_ctx(
    *,
    service: str = "kv.v1.KVService",
    method: str = "Get",
    idempotency: IdempotencyLevel = IdempotencyLevel.NO_SIDE_EFFECTS,
    stream_type: StreamType = StreamType.UNARY,
    headers: dict[str, str] | None = None,
    timeout_ms: int | None = None,
    client_address: str | None = "10.1.2.3:5555",
) -> RequestContext[Any, Any]:
    """A bare RequestContext for unit tests of interceptors."""
    info: MethodInfo[Any, Any] = MethodInfo(
        name=method,
        service_name=service,
        input=pb.GetRequest,
        output=pb.GetResponse,
        idempotency_level=idempotency,
        stream_type=stream_type,
    )
    return RequestContext(
        method=info,
        http_method="POST",
        request_headers=Headers(headers or {}),
        timeout_ms=timeout_ms,
        client_address=client_address,
    )


class SteppingClock(FakeClock):
    """A FakeClock whose sleep moves time at once and records the wait."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


def unavailable(message: str = "down") -> ConnectError:
    return ConnectError(Code.UNAVAILABLE, message)
