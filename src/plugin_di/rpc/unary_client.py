"""Connect unary calls as bytes on the lean HTTP/1.1 transports: the client's short path.

For every unary call, connectrpc's client builds a request context and two header maps, and
checks the answer in four steps; on a loopback call that is a third of what the caller
spends (docs/lab-notes.md). `connect_client` (and with it an app's plugin clients and
`HostClient.routed_client`) builds clients on an `H1Transport` or a `SyncH1Transport`
(``http://`` and ``unix://`` URLs) from `unary_client_class`, which sends unary calls
through a `UnaryWire` (or a `SyncUnaryWire`) to the `Link` the client's calls go to now:

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from connectrpc.client import ConnectClient, ConnectClientSync
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import MethodInfo
from connectrpc.request import Headers, RequestContext
from pyqwest import FullResponse

from plugin_di._compat.connectrpc import (
    ClientFields,
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

__all__ = ["Link", "Links", "SyncUnaryWire", "UnaryWire", "attach_unary_wire", "unary_client_class"]

ClientT = TypeVar("ClientT")

_IDENTITY = ("", "identity")
_MAX_ROUTES = 256
"""Requests kept per client: methods, times the header sets of intercepted calls."""


@dataclass(frozen=True, slots=True)
class _Route:
    """One method's request, all but its body."""

    url: str
    headers: tuple[tuple[str, str], ...]
    head: bytes
    """`head_prefix` of ``headers``"""


TransportT = TypeVar("TransportT", bound=H1Transport | SyncH1Transport)


@dataclass(eq=False, slots=True)
class Link(Generic[TransportT]):
    """A server a wire sends to: the lean transport, and the base URL calls go to."""

    transport: TransportT
    base: str
    """``http://host:port`` (with a path prefix, if any), as generated clients are given"""
    address: tuple[str, int] = field(init=False)
    """the transport's pool key: ``(host, port)``"""
    host: str = field(init=False)
    """the request heads' ``host:`` line"""

    def __post_init__(self) -> None:
        host, port, _ = split_url(self.base)
        self.address = (host, port)
        self.host = self.transport.host_line(host, port)

    def at(self, base: str) -> Link[TransportT]:
        """The same transport, calls going to ``base`` (a path under this link's, say)."""
        return Link(self.transport, base)


Links = Callable[[], Link[TransportT] | None]
"""Where a client's calls go now (None: nowhere a wire reaches; connectrpc's path then)."""


class _Wire(Generic[TransportT]):
    """What both wires share: requests made once per method and link, answers read as
    connectrpc reads them. The I/O is each subclass's."""

    __slots__ = ("_content_type", "_fields", "_routes", "bare", "link")

    def __init__(self, fields: ClientFields, links: Links[TransportT]) -> None:
        self._fields = fields
        self._content_type = f"application/{fields.codec.name()}"
        self._routes: tuple[Link[TransportT] | None, dict[tuple[Any, ...], _Route]] = (None, {})
        self.link: Links[TransportT] = links
        """The link a call goes out on (looked up per call: a plugin that restarts moves)."""
        self.bare = not fields.intercepted
        """No unary interceptors: calls need no request context."""

    def _route_of(
        self, link: Link[TransportT], method: MethodInfo[Any, Any], timeout_ms: int | None
    ) -> _Route:
        """The request of a call with no per-call headers (``timeout_ms``: the call's)."""
        routes = self._routes_on(link)
        key = (method.service_name, method.name)
        found = routes.get(key)
        if found is None:
            found = self._first_route(link, method)
            routes[key] = found
        if timeout_ms is None:
            return found
        timeout = ("connect-timeout-ms", str(timeout_ms))  # what create_request_context adds
        line = f"{timeout[0]}: {timeout[1]}\r\n".encode("latin-1")
        return _Route(found.url, (*found.headers, timeout), found.head + line)

    def _first_route(self, link: Link[TransportT], method: MethodInfo[Any, Any]) -> _Route:
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
        return _new_route(link, method, tuple(ctx.request_headers.allitems()))

    def _context_route(self, link: Link[TransportT], ctx: RequestContext[Any, Any]) -> _Route:
        """The request a context describes (its headers as they are now): the same few
        header sets come back call after call (a token, a deadline), so heads are kept."""
        method = ctx.method
        pairs = tuple(ctx.request_headers.allitems())
        routes = self._routes_on(link)
        key = (method.service_name, method.name, pairs)
        found = routes.get(key)
        if found is None:
            found = _new_route(link, method, pairs)
            routes[key] = found
        return found

    def _routes_on(self, link: Link[TransportT]) -> dict[tuple[Any, ...], _Route]:
        """The requests made for ``link`` (none yet when the plugin moved; bounded)."""
        cached, routes = self._routes
        if cached is not link:
            routes = {}
            self._routes = (link, routes)
        elif len(routes) >= _MAX_ROUTES:
            routes.clear()
        return routes

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


class UnaryWire(_Wire[H1Transport]):
    """One async client's unary calls as bytes on an `H1Transport`."""

    __slots__ = ()

    async def call(
        self,
        link: Link[H1Transport],
        request: Any,
        method: MethodInfo[Any, Any],
        timeout_ms: int | None,
    ) -> Any:
        """A call with no per-call headers and no interceptors."""
        timeout_ms = self._timeout(timeout_ms)
        route = self._route_of(link, method, timeout_ms)
        return await self._exchange(link, route, request, method.output, timeout_ms)

    async def send(
        self, link: Link[H1Transport], request: Any, ctx: RequestContext[Any, Any]
    ) -> Any:
        """The innermost send of a call with a context: the request the context gives."""
        route = self._context_route(link, ctx)
        return await self._exchange(link, route, request, ctx.method.output, ctx.timeout_ms)

    async def _exchange(
        self,
        link: Link[H1Transport],
        route: _Route,
        request: Any,
        output: type[Any],
        timeout_ms: float | None,
    ) -> Any:
        # Exceptions map as in connectrpc's client, encoding included.
        try:
            data = self._fields.codec.encode(request)
            if timeout_ms is None:
                return await self._answer(link, route, data, output)
            if timeout_ms <= 0:
                raise ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out")
            async with asyncio.timeout(timeout_ms / 1000):
                return await self._answer(link, route, data, output)
        except TimeoutError as exc:
            raise ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out") from exc
        except ConnectError:
            raise
        except asyncio.CancelledError as exc:
            raise ConnectError(Code.CANCELED, "Request was cancelled") from exc
        except Exception as exc:
            raise ConnectError(Code.UNAVAILABLE, str(exc)) from exc

    async def _answer(
        self, link: Link[H1Transport], route: _Route, data: bytes, output: type[Any]
    ) -> Any:
        if len(data) > INLINE_BODY_BYTES:  # written while the answer is watched for
            response = await link.transport.fetch("POST", route.url, route.headers, data)
            return self._checked(response, output)
        answer = await link.transport.exchange(link.address, _request(route, data))
        return self._read(answer, output)


class SyncUnaryWire(_Wire[SyncH1Transport]):
    """One sync client's unary calls as bytes on a `SyncH1Transport`."""

    __slots__ = ()

    def call(
        self,
        link: Link[SyncH1Transport],
        request: Any,
        method: MethodInfo[Any, Any],
        timeout_ms: int | None,
    ) -> Any:
        """A call with no per-call headers and no interceptors."""
        timeout_ms = self._timeout(timeout_ms)
        route = self._route_of(link, method, timeout_ms)
        return self._exchange(link, route, request, method.output, timeout_ms)

    def send(self, link: Link[SyncH1Transport], request: Any, ctx: RequestContext[Any, Any]) -> Any:
        """The innermost send of a call with a context: the request the context gives."""
        route = self._context_route(link, ctx)
        return self._exchange(link, route, request, ctx.method.output, ctx.timeout_ms)

    def _exchange(
        self,
        link: Link[SyncH1Transport],
        route: _Route,
        request: Any,
        output: type[Any],
        timeout_ms: float | None,
    ) -> Any:
        if timeout_ms is not None and timeout_ms <= 0:
            raise ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out")
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        # Exceptions map as in connectrpc's sync client, encoding included.
        try:
            data = self._fields.codec.encode(request)
            answer = link.transport.exchange(link.address, _request(route, data), deadline)
            return self._read(answer, output)
        except TimeoutError as exc:
            raise ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out") from exc
        except ConnectError:
            raise
        except Exception as exc:
            raise ConnectError(Code.UNAVAILABLE, str(exc)) from exc


def _new_route(
    link: Link[Any], method: MethodInfo[Any, Any], pairs: tuple[tuple[str, str], ...]
) -> _Route:
    url = f"{link.base}/{method.service_name}/{method.name}"
    return _Route(url, pairs, head_prefix("POST", split_url(url)[2], pairs, link.host))


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
        link = None if wire is None or not wire.bare or headers or use_get else wire.link()
        if link is None:
            return await super().execute_unary(
                request=request,
                method=method,
                headers=headers,
                timeout_ms=timeout_ms,
                use_get=use_get,
            )
        assert wire is not None
        return await wire.call(link, request, method, timeout_ms)

    async def _send_request_unary(self, request: Any, ctx: RequestContext[Any, Any], /) -> Any:
        wire = self._unary_wire
        link = None if wire is None or ctx.http_method != "POST" else wire.link()
        if link is None:
            return await super()._send_request_unary(request, ctx)
        assert wire is not None
        return await wire.send(link, request, ctx)


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
        link = None if wire is None or not wire.bare or headers or use_get else wire.link()
        if link is None:
            return super().execute_unary(
                request=request,
                method=method,
                headers=headers,
                timeout_ms=timeout_ms,
                use_get=use_get,
            )
        assert wire is not None
        return wire.call(link, request, method, timeout_ms)

    def _send_request_unary(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
        wire = self._unary_wire
        link = None if wire is None or ctx.http_method != "POST" else wire.link()
        if link is None:
            return super()._send_request_unary(request, ctx)
        assert wire is not None
        return wire.send(link, request, ctx)


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


def attach_unary_wire(client: object, links: Links[Any]) -> None:
    """Send ``client``'s unary calls through a wire to whatever ``links()`` gives, if they fit
    (a sync client's links give `SyncH1Transport` links, an async client's `H1Transport`)."""
    fields = client_fields(client)
    if not fields.connect or fields.send_compression.name() != "identity":
        return  # only Connect calls without compression go out as bytes
    if isinstance(client, _UnaryWireClient):
        client._unary_wire = UnaryWire(fields, links)
    elif isinstance(client, _SyncUnaryWireClient):
        client._unary_wire = SyncUnaryWire(fields, links)
