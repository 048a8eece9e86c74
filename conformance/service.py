"""ConformanceService as the suite's reference client expects it (upstream testing_servers.md).

Every method echoes what it received (headers, timeout, the request messages) in a
``ConformancePayload`` or, when it answers with an error, in the error's details; sets the
response headers and trailers the request asks for; waits the asked delays; and fails with the
asked error. ``Unimplemented`` is left to the generated default (UNIMPLEMENTED).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import Headers, RequestContext
from google.protobuf import any_pb2
from google.protobuf.message import Message
from protobuf.wkt import Any as AnyDetail

from conformance.gen import config_pb2, service_connect, service_pb2
from plugin_di.rpc.errors import pack_detail

RequestInfo = service_pb2.ConformancePayload.RequestInfo
_Ctx = RequestContext[Any, Any]


def connect_code(code: int) -> Code:
    """The connectrpc code of a conformance ``Code`` value (same names, ``CODE_`` prefix)."""
    return Code[config_pb2.Code.Name(code).removeprefix("CODE_")]


def _add(target: Headers, pairs: Iterable[service_pb2.Header]) -> None:
    for header in pairs:
        for value in header.value:
            target.add(header.name, value)


def _set_metadata(
    ctx: _Ctx,
    definition: service_pb2.UnaryResponseDefinition | service_pb2.StreamResponseDefinition,
) -> None:
    _add(ctx.response_headers, definition.response_headers)
    _add(ctx.response_trailers, definition.response_trailers)


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def request_info(ctx: _Ctx, requests: Sequence[Message]) -> Any:
    """What the server saw: request headers, the timeout left, the messages, GET or not."""
    info = RequestInfo(requests=[_packed(r) for r in requests])
    for name in ctx.request_headers:
        info.request_headers.add(name=name, value=list(ctx.request_headers.getall(name)))
    if ctx.timeout_ms is not None:
        info.timeout_ms = int(ctx.timeout_ms)
    if ctx.http_method == "GET":
        info.connect_get_info.SetInParent()  # connectrpc does not expose the query
    return info


def _error(error: service_pb2.Error, info: Any | None) -> ConnectError:
    details = [AnyDetail(type_url=d.type_url, value=d.value) for d in error.details]
    if info is not None:
        details.append(pack_detail(info))
    return ConnectError(connect_code(error.code), error.message, details)


async def _pause(milliseconds: int) -> None:
    if milliseconds:
        await asyncio.sleep(milliseconds / 1000)


async def _single_answer(
    definition: service_pb2.UnaryResponseDefinition, requests: Sequence[Message], ctx: _Ctx
) -> Any:
    """The payload of a unary or client-stream call, or the error its definition asks for."""
    _set_metadata(ctx, definition)
    info = request_info(ctx, requests)
    await _pause(definition.response_delay_ms)
    if definition.WhichOneof("response") == "error":
        raise _error(definition.error, info)
    return service_pb2.ConformancePayload(request_info=info, data=definition.response_data)


class ConformanceServer(service_connect.ConformanceService):
    """The six methods of ``connectrpc.conformance.v1.ConformanceService``."""

    async def unary(self, request: Any, ctx: _Ctx) -> Any:
        payload = await _single_answer(request.response_definition, [request], ctx)
        return service_pb2.UnaryResponse(payload=payload)

    async def idempotent_unary(self, request: Any, ctx: _Ctx) -> Any:
        payload = await _single_answer(request.response_definition, [request], ctx)
        return service_pb2.IdempotentUnaryResponse(payload=payload)

    async def client_stream(self, request: AsyncIterator[Any], ctx: _Ctx) -> Any:
        requests = [message async for message in request]
        definition = (
            requests[0].response_definition if requests else service_pb2.UnaryResponseDefinition()
        )
        payload = await _single_answer(definition, requests, ctx)
        return service_pb2.ClientStreamResponse(payload=payload)

    async def server_stream(self, request: Any, ctx: _Ctx) -> AsyncIterator[Any]:
        definition = request.response_definition
        _set_metadata(ctx, definition)
        info = request_info(ctx, [request])
        for index, data in enumerate(definition.response_data):
            await _pause(definition.response_delay_ms)
            payload = service_pb2.ConformancePayload(data=data)
            if index == 0:
                payload.request_info.CopyFrom(info)
            yield service_pb2.ServerStreamResponse(payload=payload)
        if definition.HasField("error"):
            raise _error(definition.error, None if definition.response_data else info)

    async def bidi_stream(self, request: AsyncIterator[Any], ctx: _Ctx) -> AsyncIterator[Any]:
        definition = service_pb2.StreamResponseDefinition()
        full_duplex = False
        pending: list[Message] = []  # requests not yet echoed in a response
        sent = 0
        first = True
        async for message in request:
            if first:  # the first message carries the instructions
                first = False
                definition = message.response_definition
                full_duplex = message.full_duplex
                _set_metadata(ctx, definition)
            pending.append(message)
            if not full_duplex:
                continue
            if sent >= len(definition.response_data):
                break  # nothing left to answer with: end with the error, if any
            await _pause(definition.response_delay_ms)
            payload = service_pb2.ConformancePayload(
                data=definition.response_data[sent], request_info=request_info(ctx, pending)
            )
            pending = []
            sent += 1
            yield service_pb2.BidiStreamResponse(payload=payload)
        info = request_info(ctx, pending)
        for data in definition.response_data[sent:]:
            await _pause(definition.response_delay_ms)
            payload = service_pb2.ConformancePayload(data=data)
            if sent == 0:
                payload.request_info.CopyFrom(info)
            sent += 1
            yield service_pb2.BidiStreamResponse(payload=payload)
        if definition.HasField("error"):
            raise _error(definition.error, None if sent else info)
