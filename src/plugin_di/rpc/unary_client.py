"""Connect unary calls as bytes on the lean HTTP/1.1 transports: the client's short path.

For every unary call, connectrpc's client builds a request context and two header maps, and
checks the answer in four steps; on a loopback call that is a third of what the caller
spends (docs/lab-notes.md). `connect_client` builds clients on an `H1Transport` or a
`SyncH1Transport` (``http://`` and ``unix://`` URLs) from `unary_client_class`, which sends
unary calls through a `UnaryWire` (or a `SyncUnaryWire`) instead:

- a call without per-call headers or interceptors writes a request head made once per
  method, by connectrpc's own protocol code (so with the same header fields), then the
  message; a 200 answer of the expected content type is decoded directly;
- under interceptors, or with per-call headers, connectrpc builds the context as before and
  only the innermost send is replaced: the head the context's headers give.

Every other answer (an error, another content type, a content-encoding) goes through the
checks connectrpc's client runs, in its order, so callers see the same errors and the same
``ResponseMetadata``. GET requests take connectrpc's path unchanged, as do clients of other
protocols or compressions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from connectrpc.client import ConnectClient, ConnectClientSync
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import MethodInfo
from connectrpc.request import Headers, RequestContext
from pyqwest import FullResponse

from plugin_di._compat.connectrpc import (
    ConnectWireError,
    client_fields,
    decode_message,
    handle_response_headers,
    response_metadata_wanted,
)
from plugin_di.rpc._http1 import (
    INLINE_BODY_BYTES,
    NO_TRAILERS,
    Head,
    decode_body,
    head_prefix,
    split_url,
)
from plugin_di.rpc.h1 import H1Transport
from plugin_di.rpc.h1sync import SyncH1Transport

__all__ = ["SyncUnaryWire", "UnaryWire", "attach_unary_wire", "unary_client_class"]

ClientT = TypeVar("ClientT")

_IDENTITY = ("", "identity")


@dataclass(frozen=True, slots=True)
class _Route:
    """One method's request, all but its body."""

    url: str
    headers: tuple[tuple[str, str], ...]
    head: bytes
    """`head_prefix` of ``headers``"""


class _Wire:
    """What both wires share: requests made once per method, answers read as connectrpc
    reads them. The I/O is each subclass's."""

    __slots__ = ("_address", "_content_type", "_fields", "_host", "_routes", "bare")

    def __init__(self, client: object, host_line: Any) -> None:
        fields = client_fields(client)
        host, port, _ = split_url(fields.address)
        self._fields = fields
        self._address = (host, port)
        self._host: str = host_line(host, port)
        self._content_type = f"application/{fields.codec.name()}"
        self._routes: dict[tuple[str, str], _Route] = {}
        self.bare = not fields.intercepted
        """No unary interceptors: calls need no request context."""

    @staticmethod
    def fits(client: object) -> bool:
        """Whether ``client``'s unary calls can take this path (Connect, no compression)."""
        fields = client_fields(client)
        return fields.connect and fields.send_compression.name() == "identity"

    def _route_of(self, method: MethodInfo[Any, Any], timeout_ms: int | None) -> _Route:
        """The request of a call with no per-call headers (``timeout_ms``: the call's)."""
        route = self._routes.get((method.service_name, method.name))
        if route is None:
            route = self._first_route(method)
        if timeout_ms is not None:  # the header create_request_context would add
            timeout = ("connect-timeout-ms", str(timeout_ms))
            line = f"{timeout[0]}: {timeout[1]}\r\n".encode("latin-1")
            route = _Route(route.url, (*route.headers, timeout), route.head + line)
        return route

    def _first_route(self, method: MethodInfo[Any, Any]) -> _Route:
        fields = self._fields
        ctx = fields.protocol.create_request_context(
            method=method,
            url=fields.address,
            http_method="POST",
            user_headers=None,
            timeout_ms=None,
            codec=fields.codec,
            stream=False,
            accept_compression=fields.accept_compression,
            send_compression=fields.send_compression,
        )
        route = self._routes[(method.service_name, method.name)] = self._context_route(ctx)
        return route

    def _context_route(self, ctx: RequestContext[Any, Any]) -> _Route:
        """The request a context describes (its headers as they are now)."""
        method = ctx.method
        url = f"{self._fields.address}/{method.service_name}/{method.name}"
        pairs = tuple(ctx.request_headers.allitems())
        return _Route(url, pairs, head_prefix("POST", split_url(url)[2], pairs, self._host))

    def _timeout(self, timeout_ms: int | None) -> int | None:
        return self._fields.timeout_ms if timeout_ms is None else timeout_ms

    def _read(self, answer: Head, output: type[Any]) -> Any:
        """The message of a whole answer, or the error connectrpc's client would raise."""
        body = answer.body
        assert body is not None
        if (
            answer.status != 200
            or answer.content_type != self._content_type
            or answer.content_encoding not in _IDENTITY
        ):
            headers = answer.headers
            response = FullResponse(answer.status, headers, decode_body(headers, body), NO_TRAILERS)
            return self._checked(response, output)
        if response_metadata_wanted():
            handle_response_headers(200, answer.headers)
        fields = self._fields
        if fields.read_max_bytes is not None and len(body) > fields.read_max_bytes:
            raise _too_large(fields.read_max_bytes)
        return decode_message(fields.codec, body, output)

    def _checked(self, response: FullResponse, output: type[Any]) -> Any:
        """What connectrpc's client does with an answer, in its order: for those the fast
        check of `_read` does not take."""
        fields = self._fields
        headers = response.headers
        handle_response_headers(response.status, headers)
        fields.protocol.validate_response(
            fields.codec.name(), response.status, headers.get("content-type", "")
        )
        fields.protocol.handle_response_compression(
            headers, fields.response_compressions, stream=False
        )
        if fields.read_max_bytes is not None and len(response.content) > fields.read_max_bytes:
            raise _too_large(fields.read_max_bytes)
        if response.status == 200:
            return decode_message(fields.codec, response.content, output)
        raise ConnectWireError.from_response(response).to_exception()


class UnaryWire(_Wire):
    """One async client's unary calls as bytes on an `H1Transport`."""

    __slots__ = ("_transport",)

    def __init__(self, client: ConnectClient, transport: H1Transport) -> None:
        super().__init__(client, transport.host_line)
        self._transport = transport

    async def call(self, request: Any, method: MethodInfo[Any, Any], timeout_ms: int | None) -> Any:
        """A call with no per-call headers and no interceptors."""
        timeout_ms = self._timeout(timeout_ms)
        route = self._route_of(method, timeout_ms)
        return await self._exchange(route, request, method.output, timeout_ms)

    async def send(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
        """The innermost send of a call with a context: the request the context gives."""
        route = self._context_route(ctx)
        return await self._exchange(route, request, ctx.method.output, ctx.timeout_ms)

    async def _exchange(
        self, route: _Route, request: Any, output: type[Any], timeout_ms: float | None
    ) -> Any:
        # Exceptions map as in connectrpc's client, encoding included.
        try:
            data = self._fields.codec.encode(request)
            if timeout_ms is None:
                return await self._answer(route, data, output)
            if timeout_ms <= 0:
                raise ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out")
            async with asyncio.timeout(timeout_ms / 1000):
                return await self._answer(route, data, output)
        except TimeoutError as exc:
            raise ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out") from exc
        except ConnectError:
            raise
        except asyncio.CancelledError as exc:
            raise ConnectError(Code.CANCELED, "Request was cancelled") from exc
        except Exception as exc:
            raise ConnectError(Code.UNAVAILABLE, str(exc)) from exc

    async def _answer(self, route: _Route, data: bytes, output: type[Any]) -> Any:
        if len(data) > INLINE_BODY_BYTES:  # written while the answer is watched for
            response = await self._transport.fetch("POST", route.url, route.headers, data)
            return self._checked(response, output)
        answer = await self._transport.exchange(self._address, _request(route, data))
        return self._read(answer, output)


class SyncUnaryWire(_Wire):
    """One sync client's unary calls as bytes on a `SyncH1Transport`."""

    __slots__ = ("_transport",)

    def __init__(self, client: ConnectClientSync, transport: SyncH1Transport) -> None:
        super().__init__(client, transport.host_line)
        self._transport = transport

    def call(self, request: Any, method: MethodInfo[Any, Any], timeout_ms: int | None) -> Any:
        """A call with no per-call headers and no interceptors."""
        timeout_ms = self._timeout(timeout_ms)
        route = self._route_of(method, timeout_ms)
        return self._exchange(route, request, method.output, timeout_ms)

    def send(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
        """The innermost send of a call with a context: the request the context gives."""
        route = self._context_route(ctx)
        return self._exchange(route, request, ctx.method.output, ctx.timeout_ms)

    def _exchange(
        self, route: _Route, request: Any, output: type[Any], timeout_ms: float | None
    ) -> Any:
        if timeout_ms is not None and timeout_ms <= 0:
            raise ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out")
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        # Exceptions map as in connectrpc's sync client, encoding included.
        try:
            data = self._fields.codec.encode(request)
            answer = self._transport.exchange(self._address, _request(route, data), deadline)
            return self._read(answer, output)
        except TimeoutError as exc:
            raise ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out") from exc
        except ConnectError:
            raise
        except Exception as exc:
            raise ConnectError(Code.UNAVAILABLE, str(exc)) from exc


def _request(route: _Route, data: bytes) -> bytes:
    return b"%scontent-length: %d\r\n\r\n%s" % (route.head, len(data), data)


def _too_large(limit: int) -> ConnectError:
    return ConnectError(Code.RESOURCE_EXHAUSTED, f"message is larger than configured max {limit}")


class _UnaryWireClient(ConnectClient):
    """The overrides of an async client whose unary calls go through a `UnaryWire`."""

    _unary_wire: UnaryWire | None = None

    async def execute_unary(
        self,
        *,
        request: Any,
        method: MethodInfo[Any, Any],
        headers: Headers | Mapping[str, str] | None = None,
        timeout_ms: int | None = None,
        use_get: bool = False,
    ) -> Any:
        wire = self._unary_wire
        if wire is None or not wire.bare or headers is not None or use_get:
            return await super().execute_unary(
                request=request,
                method=method,
                headers=headers,
                timeout_ms=timeout_ms,
                use_get=use_get,
            )
        return await wire.call(request, method, timeout_ms)

    async def _send_request_unary(self, request: Any, ctx: RequestContext[Any, Any], /) -> Any:
        wire = self._unary_wire
        if wire is None or ctx.http_method != "POST":
            return await super()._send_request_unary(request, ctx)
        return await wire.send(request, ctx)


class _SyncUnaryWireClient(ConnectClientSync):
    """The overrides of a sync client whose unary calls go through a `SyncUnaryWire`."""

    _unary_wire: SyncUnaryWire | None = None

    def execute_unary(
        self,
        *,
        request: Any,
        method: MethodInfo[Any, Any],
        headers: Headers | Mapping[str, str] | None = None,
        timeout_ms: int | None = None,
        use_get: bool = False,
    ) -> Any:
        wire = self._unary_wire
        if wire is None or not wire.bare or headers is not None or use_get:
            return super().execute_unary(
                request=request,
                method=method,
                headers=headers,
                timeout_ms=timeout_ms,
                use_get=use_get,
            )
        return wire.call(request, method, timeout_ms)

    def _send_request_unary(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
        wire = self._unary_wire
        if wire is None or ctx.http_method != "POST":
            return super()._send_request_unary(request, ctx)
        return wire.send(request, ctx)


_subclasses: dict[type[Any], type[Any]] = {}


def unary_client_class(client_cls: type[ClientT]) -> type[ClientT]:
    """The subclass of a generated client class whose unary calls can take a wire (cached;
    same name, so reprs and error messages read as before)."""
    cls = _subclasses.get(client_cls)
    if cls is None:
        sync = issubclass(client_cls, ConnectClientSync)
        mixin = _SyncUnaryWireClient if sync else _UnaryWireClient
        cls = type(client_cls.__name__, (mixin, client_cls), {})
        cls.__qualname__ = client_cls.__qualname__
        cls.__module__ = client_cls.__module__
        _subclasses[client_cls] = cls
    return cls


def attach_unary_wire(client: object, transport: H1Transport | SyncH1Transport) -> None:
    """Send ``client``'s unary calls through a wire on ``transport``, if they fit."""
    if not _Wire.fits(client):
        return
    if isinstance(client, _UnaryWireClient) and isinstance(transport, H1Transport):
        client._unary_wire = UnaryWire(client, transport)
    elif isinstance(client, _SyncUnaryWireClient) and isinstance(transport, SyncH1Transport):
        client._unary_wire = SyncUnaryWire(client, transport)
