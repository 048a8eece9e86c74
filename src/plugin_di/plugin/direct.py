"""Direct dispatch: a generated client whose calls go straight to the implementation.

`direct_client(service, ...)` returns an instance of a subclass of the
service's generated ``XxxClient``. Its ``_send_request_*`` methods (which the
generated methods reach through the client's interceptor chain) find the
endpoint in the generated ASGI application's table, so the server-side
interceptors run too, and call it with a server-side `RequestContext`.

Each side gets its own copy of every message (serialized and parsed, as on
the wire), deadlines become DEADLINE_EXCEEDED, oversized requests
RESOURCE_EXHAUSTED, and an exception that is not a ConnectError reaches the
caller as INTERNAL with a generic message, exactly as over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, TypeVar

import pyqwest
from connectrpc.client import ConnectClient
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.interceptor import Interceptor
from connectrpc.request import Headers, RequestContext
from connectrpc.server import DEFAULT_READ_MAX_BYTES

from plugin_di._compat.connectrpc import (
    EndpointBidiStream,
    EndpointClientStream,
    EndpointServerStream,
    EndpointUnary,
    MetadataInterceptorsRun,
    app_endpoints,
    app_metadata_interceptors,
    handle_response_headers,
    handle_response_trailers,
)
from plugin_di.plugin._errors import client_error
from plugin_di.plugin.definition import Service

ClientT = TypeVar("ClientT", bound=ConnectClient)

_Endpoint = (
    EndpointUnary[Any, Any]
    | EndpointClientStream[Any, Any]
    | EndpointServerStream[Any, Any]
    | EndpointBidiStream[Any, Any]
)


class _NoNetwork:
    """A pyqwest transport that refuses: a direct client never touches the network."""

    def execute(self, request: pyqwest.Request) -> Any:
        raise ConnectError(Code.INTERNAL, "direct-dispatch client tried to use HTTP")


class Dispatcher:
    """The endpoints of one service implementation, with the server-side interceptors."""

    def __init__(
        self,
        service: Service[Any],
        *,
        interceptors: Iterable[Interceptor] = (),
        read_max_bytes: int | None = DEFAULT_READ_MAX_BYTES,
    ) -> None:
        app = service.application(service.impl, interceptors=list(interceptors))
        if service.impl is None:
            raise ValueError(f"service {app.path} has no implementation to dispatch to")
        # The generated application applies the interceptors when it resolves its
        # endpoints; leading metadata interceptors run before the body is read.
        self._endpoints: Mapping[str, _Endpoint] = app_endpoints(app, service.impl)
        self._metadata = app_metadata_interceptors(app)
        self._read_max_bytes = read_max_bytes
        self.service_name = app.path.strip("/")

    def endpoint(self, ctx: RequestContext[Any, Any]) -> _Endpoint:
        path = f"/{ctx.method.service_name}/{ctx.method.name}"
        endpoint = self._endpoints.get(path)
        if endpoint is None:
            raise ConnectError(Code.UNIMPLEMENTED, f"{path} is not implemented by this plugin")
        return endpoint

    def server_context(self, client_ctx: RequestContext[Any, Any]) -> RequestContext[Any, Any]:
        timeout_ms = client_ctx.timeout_ms
        if timeout_ms is not None and timeout_ms <= 0:
            raise ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out")
        return RequestContext(
            method=client_ctx.method,
            http_method=client_ctx.http_method,
            request_headers=Headers(tuple(client_ctx.request_headers.allitems())),
            timeout_ms=None if timeout_ms is None else int(timeout_ms),
            server_address=client_ctx.server_address,
        )

    def copy_in(self, message: Any, cls: type[Any]) -> Any:
        data = _serialize(message)
        if self._read_max_bytes is not None and len(data) > self._read_max_bytes:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"message is larger than configured max {self._read_max_bytes}",
            )
        return _parse(cls, data)

    def run(self, ctx: RequestContext[Any, Any]) -> MetadataInterceptorsRun:
        return MetadataInterceptorsRun(self._metadata, ctx)


def _serialize(message: Any) -> bytes:
    """Wire bytes of a google-protobuf or a protobuf-py message."""
    serialize = getattr(message, "SerializeToString", None)
    data: bytes = serialize() if serialize is not None else message.to_binary()
    return data


def _parse(cls: Any, data: bytes) -> Any:
    parse = getattr(cls, "FromString", None)
    return parse(data) if parse is not None else cls.from_binary(data)


def _deadline(ctx: RequestContext[Any, Any]) -> float | None:
    timeout_ms = ctx.timeout_ms
    if timeout_ms is None:
        return None
    return asyncio.get_running_loop().time() + timeout_ms / 1000


def _publish_headers(ctx: RequestContext[Any, Any]) -> None:
    """Fill the caller's ResponseMetadata as an HTTP response would."""
    items = list(ctx.response_headers.allitems())
    items += [(f"trailer-{k}", v) for k, v in ctx.response_trailers.allitems()]
    handle_response_headers(200, pyqwest.Headers(items))


async def _copied(messages: AsyncIterator[Any], dispatcher: Dispatcher, cls: type[Any]) -> Any:
    async for message in messages:
        yield dispatcher.copy_in(message, cls)


def _timed_out(scope: asyncio.Timeout, exc: TimeoutError) -> Exception:
    if scope.expired():
        return ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out")
    return exc


class _DirectMixin:
    """The ``_send_request_*`` overrides of a direct-dispatch client."""

    _dispatcher: Dispatcher

    async def _send_request_unary(self, request: Any, ctx: RequestContext[Any, Any], /) -> Any:
        return await self._call_single(request, ctx, stream=False)

    async def _send_request_client_stream(
        self, request: AsyncIterator[Any], ctx: RequestContext[Any, Any], /
    ) -> Any:
        return await self._call_single(request, ctx, stream=True)

    async def _call_single(
        self, request: Any, ctx: RequestContext[Any, Any], *, stream: bool
    ) -> Any:
        d = self._dispatcher
        endpoint = d.endpoint(ctx)
        server_ctx = d.server_context(ctx)
        run = d.run(server_ctx)
        error: Exception | None = None
        response: Any = None
        try:
            async with asyncio.timeout_at(_deadline(server_ctx)) as scope:
                try:
                    await run.start()
                    if stream:
                        assert isinstance(endpoint, EndpointClientStream)
                        messages = _copied(request, d, endpoint.method.input)
                        response = await endpoint.function(messages, server_ctx)
                    else:
                        assert isinstance(endpoint, EndpointUnary)
                        message = d.copy_in(request, endpoint.method.input)
                        response = await endpoint.function(message, server_ctx)
                except TimeoutError:
                    raise
                except Exception as exc:
                    error = exc
        except TimeoutError as exc:
            error = _timed_out(scope, exc)
        error = await run.end(error)
        _publish_headers(server_ctx)
        if error is not None:
            raise client_error(error, f"{d.service_name}/{ctx.method.name}") from None
        return _parse(endpoint.method.output, _serialize(response))

    def _send_request_server_stream(
        self, request: Any, ctx: RequestContext[Any, Any], /
    ) -> AsyncIterator[Any]:
        return self._call_stream(request, ctx, client_streams=False)

    def _send_request_bidi_stream(
        self, request: AsyncIterator[Any], ctx: RequestContext[Any, Any], /
    ) -> AsyncIterator[Any]:
        return self._call_stream(request, ctx, client_streams=True)

    async def _call_stream(
        self, request: Any, ctx: RequestContext[Any, Any], *, client_streams: bool
    ) -> AsyncIterator[Any]:
        d = self._dispatcher
        endpoint = d.endpoint(ctx)
        server_ctx = d.server_context(ctx)
        deadline = _deadline(server_ctx)
        run = d.run(server_ctx)
        error: Exception | None = None
        responses: AsyncIterator[Any] | None = None
        headers_sent = False
        try:
            try:
                await run.start()
                if client_streams:
                    assert isinstance(endpoint, EndpointBidiStream)
                    messages = _copied(request, d, endpoint.method.input)
                    responses = endpoint.function(messages, server_ctx)
                else:
                    assert isinstance(endpoint, EndpointServerStream)
                    message = d.copy_in(request, endpoint.method.input)
                    responses = endpoint.function(message, server_ctx)
                while True:
                    # The deadline covers the handler's work, not the caller's time
                    # between messages (a yield must not cancel the caller's task).
                    try:
                        async with asyncio.timeout_at(deadline) as scope:
                            message = await anext(responses)
                    except StopAsyncIteration:
                        break
                    except TimeoutError as exc:
                        raise _timed_out(scope, exc) from None
                    if not headers_sent:
                        _publish_headers(server_ctx)
                        headers_sent = True
                    yield _parse(endpoint.method.output, _serialize(message))
            except Exception as exc:
                error = exc
            finally:
                if responses is not None and hasattr(responses, "aclose"):
                    await responses.aclose()
            error = await run.end(error)
        finally:
            if not headers_sent:
                _publish_headers(server_ctx)
            handle_response_trailers(dict(_grouped(server_ctx.response_trailers)))
        if error is not None:
            raise client_error(error, f"{d.service_name}/{ctx.method.name}") from None


def _grouped(headers: Headers) -> Iterable[tuple[str, list[str]]]:
    grouped: dict[str, list[str]] = {}
    for key, value in headers.allitems():
        grouped.setdefault(key, []).append(value)
    return grouped.items()


_subclasses: dict[type[ConnectClient], type[ConnectClient]] = {}


def direct_client_class(client_cls: type[ClientT]) -> type[ClientT]:
    """The direct-dispatch subclass of a generated client class (cached)."""
    cls = _subclasses.get(client_cls)
    if cls is None:
        cls = type(f"Direct{client_cls.__name__}", (_DirectMixin, client_cls), {})
        _subclasses[client_cls] = cls
    return cls  # type: ignore[return-value]


def direct_client(
    service: Service[ClientT],
    *,
    interceptors: Iterable[Interceptor] = (),
    server_interceptors: Iterable[Interceptor] = (),
    read_max_bytes: int | None = DEFAULT_READ_MAX_BYTES,
    address: str = "",
) -> ClientT:
    """A typed client of ``service`` that dispatches to ``service.impl`` in this process.

    ``interceptors`` run on the client side, ``server_interceptors`` on the
    server side, in the same order as over HTTP.
    """
    dispatcher = Dispatcher(
        service, interceptors=server_interceptors, read_max_bytes=read_max_bytes
    )
    cls = direct_client_class(service.client)
    client = cls(
        address or f"http://direct.invalid/{dispatcher.service_name}",
        interceptors=list(interceptors),
        http_client=pyqwest.Client(_NoNetwork()),
        send_compression=None,
        accept_compression=[],
    )
    client._dispatcher = dispatcher  # type: ignore[attr-defined]
    return client
