"""Connect unary calls answered on the server's short path (`plugin_di.rpc.serving.shortpath`).

`UnaryShortPaths` takes the unary methods of generated ``XxxServiceASGIApplication`` apps and
answers a Connect unary POST of ``application/proto`` or ``application/json`` with no ASGI
cycle in between. It runs what connectrpc's ASGI app runs for that request, from the same
objects: the endpoint with its interceptors applied, the leading metadata interceptors,
connectrpc's codecs, request context and error encoding. Timeouts become DEADLINE_EXCEEDED,
a body over the limit RESOURCE_EXHAUSTED, a body that does not parse INVALID_ARGUMENT.

A request it does not take goes through ASGI as before: compressed bodies, GET, chunked
bodies, streams, gRPC-Web, unknown paths, and apps whose service comes from lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectrpc.code import Code
from connectrpc.codec import Codec
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di._compat.connectrpc import (
    ConnectServerProtocol,
    ConnectWireError,
    EndpointUnary,
    HTTPError,
    MetadataInterceptorsRun,
    app_codecs,
    app_endpoints,
    app_metadata_interceptors,
    app_service,
    decode_message,
    request_headers,
)
from plugin_di.rpc.header_bytes import UNSUPPORTED_MEDIA_TYPE_HEADERS, check_request_bytes
from plugin_di.rpc.serving.shortpath import Answer, Exchange, ShortPathHandler
from plugin_di.rpc.serving.shortpath import Headers as RawHeaders

__all__ = ["UnaryShortPaths"]

log = logging.getLogger(__name__)

_PROTOCOL = ConnectServerProtocol()
_JSON_HEADERS = (b"content-type", b"application/json")

Tracker = Callable[[], contextlib.AbstractAsyncContextManager[None]]
"""Entered around each call, e.g. to count calls in flight for a graceful stop."""


@dataclass(frozen=True, slots=True)
class _Method:
    endpoint: EndpointUnary[Any, Any]
    metadata_interceptors: tuple[Any, ...]
    codecs: Mapping[bytes, Codec[Any, Any]]  # content-type -> codec
    handlers: dict[bytes, ShortPathHandler]  # content-type -> its handler, built once


@contextlib.asynccontextmanager
async def _untracked() -> AsyncIterator[None]:
    yield


class UnaryShortPaths:
    """The unary methods of generated Connect apps, answered without ASGI (a `ShortPaths`)."""

    def __init__(
        self,
        apps: Iterable[Any],
        *,
        max_message_bytes: int,
        track: Tracker = _untracked,
    ) -> None:
        self._max = max_message_bytes
        self._track = track
        self._methods: dict[bytes, _Method] = {}
        for app in apps:
            self._add(app)

    def _add(self, app: Any) -> None:
        service = app_service(app)
        if service is None or inspect.isasyncgen(service):
            return  # its service exists only once lifespan ran: ASGI serves it
        codecs: dict[bytes, Codec[Any, Any]] = {}
        for name, codec in (app_codecs(app) or {}).items():
            if name in ("proto", "json"):
                codecs[f"application/{name}".encode()] = codec
        endpoints = app_endpoints(app, service)
        metadata = app_metadata_interceptors(app)
        for path, endpoint in endpoints.items():
            if isinstance(endpoint, EndpointUnary):
                target = _Method(endpoint, metadata, codecs, {})
                for content_type, codec in codecs.items():
                    target.handlers[content_type] = self._handler(target, codec)
                self._methods[path.encode()] = target

    def match(self, method: bytes, path: bytes, headers: RawHeaders) -> ShortPathHandler | None:
        """A handler for a Connect unary POST this table can answer, else None."""
        target = self._methods.get(path)
        if target is None or method != b"POST":
            return None
        handler = None
        length = -1
        for name, value in headers:
            if name == b"content-type":
                handler = target.handlers.get(value)
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"transfer-encoding" or (
                name == b"content-encoding" and value != b"identity"
            ):
                return None
        if handler is None or not 0 <= length <= self._max:
            return None
        return handler

    def _handler(self, target: _Method, codec: Codec[Any, Any]) -> ShortPathHandler:
        if self._track is _untracked:

            def start(exchange: Exchange) -> None:
                exchange.answer_with(_call(target, codec, exchange.headers, exchange.body))

        else:

            def start(exchange: Exchange) -> None:
                exchange.answer_with(self._tracked(target, codec, exchange.headers, exchange.body))

        return start

    def call(
        self, target: _Method, codec: Codec[Any, Any], raw: RawHeaders, body: bytes
    ) -> Coroutine[Any, Any, Answer]:
        """Run one call: metadata interceptors, decode, endpoint, encode; errors as Connect."""
        if self._track is _untracked:  # one coroutine and context manager fewer per call
            return _call(target, codec, raw, body)
        return self._tracked(target, codec, raw, body)

    async def _tracked(
        self, target: _Method, codec: Codec[Any, Any], raw: RawHeaders, body: bytes
    ) -> Answer:
        async with self._track():
            return await _call(target, codec, raw, body)


async def _call(target: _Method, codec: Codec[Any, Any], raw: RawHeaders, body: bytes) -> Answer:
    try:
        ctx = _PROTOCOL.create_request_context(
            target.endpoint.method, "POST", "http", request_headers(raw)
        )
    except UnicodeDecodeError:  # what the ASGI path refuses, refused the same way
        return _refusal_answer(raw)
    except Exception as exc:  # a malformed protocol header
        return _error_answer(exc, None)
    endpoint = target.endpoint
    # ctx's private fields are read inline (a call each would cost more): see
    # plugin_di._compat.connectrpc.HOT_PATH_ATTRIBUTES.
    if not target.metadata_interceptors and ctx._end_time is None:
        # Nothing to start or end around the call and no deadline: what the general path
        # below does in that case, without its run and timeout scope.
        try:
            response = await endpoint.function(
                decode_message(codec, body, endpoint.method.input), ctx
            )
            data = codec.encode(response)
        except Exception as exc:
            return _error_answer(exc, ctx)
        return _success(codec, data, ctx)
    run = MetadataInterceptorsRun(target.metadata_interceptors, ctx)
    response = None
    error: Exception | None = None
    try:
        async with asyncio.timeout_at(_deadline(ctx)) as scope:
            try:
                await run.start()
                request = decode_message(codec, body, endpoint.method.input)
                response = await endpoint.function(request, ctx)
            except TimeoutError:
                raise
            except Exception as exc:
                error = exc
    except TimeoutError as exc:
        error = (
            ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out") if scope.expired() else exc
        )
    except asyncio.CancelledError:  # the caller went away, or the stop's grace ran out
        await run.end(ConnectError(Code.CANCELED, "Request was cancelled"))
        raise
    error = await run.end(error)
    if error is None:
        try:
            data = codec.encode(response)
        except Exception as exc:
            error = exc
        else:
            return _success(codec, data, ctx)
    return _error_answer(error, ctx)


def _success(codec: Codec[Any, Any], data: bytes, ctx: RequestContext[Any, Any]) -> Answer:
    if ctx._response_headers is None and ctx._response_trailers is None:
        return Answer(200, _content_type_headers(codec), data)  # nothing set: a shared tuple
    headers = [(b"content-type", _content_type(codec))]
    _context_headers(headers, ctx)
    return Answer(200, headers, data)


def _deadline(ctx: RequestContext[Any, Any]) -> float | None:
    timeout_ms = ctx.timeout_ms
    if timeout_ms is None:
        return None
    return asyncio.get_running_loop().time() + timeout_ms / 1000


_CONTENT_TYPES: dict[str, bytes] = {}
_CONTENT_TYPE_HEADERS: dict[str, tuple[tuple[bytes, bytes], ...]] = {}


def _refusal_answer(raw: RawHeaders) -> Answer:
    refused = check_request_bytes(raw)
    if refused is None or refused.code is None:
        return Answer(415, list(UNSUPPORTED_MEDIA_TYPE_HEADERS), b"")
    return _error_answer(ConnectError(refused.code, refused.message), None)


def _content_type(codec: Codec[Any, Any]) -> bytes:
    name = codec.name()
    cached = _CONTENT_TYPES.get(name)
    if cached is None:
        cached = _CONTENT_TYPES[name] = f"application/{name}".encode()
    return cached


def _content_type_headers(codec: Codec[Any, Any]) -> tuple[tuple[bytes, bytes], ...]:
    name = codec.name()
    cached = _CONTENT_TYPE_HEADERS.get(name)
    if cached is None:
        cached = _CONTENT_TYPE_HEADERS[name] = ((b"content-type", _content_type(codec)),)
    return cached


def _context_headers(
    headers: list[tuple[bytes, bytes]], ctx: RequestContext[Any, Any] | None
) -> None:
    if ctx is None:
        return
    for key, value in ctx.response_headers.allitems():
        headers.append((key.encode(), value.encode()))
    for key, value in ctx.response_trailers.allitems():
        headers.append((f"trailer-{key}".encode(), value.encode()))


def _error_answer(error: Exception, ctx: RequestContext[Any, Any] | None) -> Answer:
    if isinstance(error, HTTPError):
        headers = [(k.encode(), v.encode()) for k, v in error.headers]
        return Answer(error.status.value, headers, b"")
    if not isinstance(error, ConnectError):
        # What the ASGI path does too: never the exception's text on the wire.
        log.error("unhandled error in a unary call", exc_info=error)
        error = ConnectError(Code.INTERNAL, "internal error")
    wire = ConnectWireError.from_exception(error)
    headers = [_JSON_HEADERS]
    _context_headers(headers, ctx)
    return Answer(wire.to_http_status().code, headers, wire.to_json_bytes())
