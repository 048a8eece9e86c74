"""One ASGI app serving many generated Connect services, plus plain ASGI routes, by path.

connectrpc ships one ``XxxServiceASGIApplication`` per service and no router. ``ServiceMux``
dispatches on the exact method path (a dict lookup; the hot path adds no wrapper), answers
unknown services and methods with UNIMPLEMENTED and oversized bodies with RESOURCE_EXHAUSTED
in the caller's own protocol (Connect, gRPC or gRPC-Web), and forwards ASGI lifespan to every
app it holds.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from connectrpc.code import Code

from plugin_di._compat.connectrpc import set_app_read_max_bytes
from plugin_di.rpc.header_bytes import check_request_bytes
from plugin_di.rpc.lifespan import forward_lifespan
from plugin_di.rpc.quiet_codecs import quiet_app
from plugin_di.rpc.wire_errors import (
    GRPC_STATUS,
    error_response,
    send_error,
    send_refusal,
)
from plugin_di.rpc.wire_errors import request_header as _header

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "GRPC_STATUS",
    "ASGIApp",
    "ConnectApp",
    "ServiceMux",
    "error_response",
    "send_error",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_ENVELOPE_PREFIX = 5  # gRPC / gRPC-Web / Connect-streaming message prefix: flags + length

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ASGIApp(Protocol):
    """Any ASGI 3 application."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send, /) -> None: ...


class ConnectApp(ASGIApp, Protocol):
    """A generated ``XxxServiceASGIApplication``: an ASGI app that knows its mount path."""

    @property
    def path(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Route:
    app: ASGIApp
    # The largest acceptable Content-Length, or None when any length may be fine (client
    # streams carry many messages; connectrpc limits each message instead).
    max_body: int | None


def _service_methods(service_name: str) -> dict[str, bool] | None:
    """Method name -> client-streaming, from the google-protobuf descriptor pool."""
    try:
        # Imported by name: google-protobuf ships no type stubs.
        pool = importlib.import_module("google.protobuf.descriptor_pool").Default()
        service = pool.FindServiceByName(service_name)
    except (ImportError, KeyError):
        return None
    return {method.name: bool(method.client_streaming) for method in service.methods}


def _apply_read_limit(app: object, max_message_bytes: int) -> None:
    # connectrpc 0.13 reads the limit from this attribute on every request; the apps are
    # built by the caller, so the mux is the one place that knows the process-wide limit.
    set_app_read_max_bytes(app, max_message_bytes)


class _NotFoundToUnimplemented:
    """Rewrites a connectrpc 404 (unknown method) into UNIMPLEMENTED in the caller's protocol.

    Used only for services whose methods the descriptor pool does not list.
    """

    __slots__ = ("_scope", "_send", "_swallow")

    def __init__(self, scope: Scope, send: Send) -> None:
        self._scope = scope
        self._send = send
        self._swallow = False

    async def __call__(self, message: Message) -> None:
        if self._swallow:
            return
        if message["type"] == "http.response.start" and message["status"] == 404:
            self._swallow = True
            await send_error(self._scope, self._send, Code.UNIMPLEMENTED, _unknown(self._scope))
            return
        await self._send(message)


_NEEDS_HTTP2 = (
    "the gRPC protocol needs HTTP/2 with trailers, which this connection lacks: "
    "call over HTTP/2, or with Connect or gRPC-Web"
)


def _grpc_without_trailers(scope: Scope) -> bool:
    """A gRPC (not gRPC-Web) request on a server without ASGI trailers (HTTP/1.1):
    connectrpc would answer it with its RuntimeError's text."""
    if "http.response.trailers" in (scope.get("extensions") or ()):
        return False
    kind = (_header(scope, b"content-type") or b"").lower()
    return kind.startswith(b"application/grpc") and not kind.startswith(b"application/grpc-web")


def _unknown(scope: Scope) -> str:
    return f"unknown service or method {scope.get('path', '')!r}"


class ServiceMux:
    """Serve several generated Connect ASGI apps (and plain ASGI routes) as one ASGI app.

    ``apps`` are generated ``XxxServiceASGIApplication`` objects, each mounted at its ``.path``.
    ``max_message_bytes`` is passed down to every app as connectrpc's ``read_max_bytes``, and a
    request whose Content-Length exceeds it is refused before its body is read. An answer may
    end before its request body was read: the server (`plugin_di.rpc.serving`) then discards
    the rest, or resets the HTTP/2 stream with NO_ERROR, and the connection stays usable.
    """

    def __init__(
        self,
        apps: Iterable[ConnectApp] = (),
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
        self.max_message_bytes = max_message_bytes
        self._methods: dict[str, _Route] = {}
        self._services: dict[str, ASGIApp] = {}
        self._opaque: dict[str, ASGIApp] = {}
        self._prefixes: list[tuple[str, ASGIApp]] = []
        self._lifespan_apps: list[ASGIApp] = []
        for app in apps:
            self.add_service(app)

    @property
    def service_names(self) -> list[str]:
        """Fully-qualified names of the mounted services, e.g. ``kv.v1.KVService``."""
        return list(self._services)

    def add_service(self, app: ConnectApp) -> None:
        """Mount a generated Connect ASGI app at its ``.path``."""
        path = app.path.rstrip("/")
        name = path.lstrip("/")
        if name in self._services:
            raise ValueError(f"service {name!r} is mounted twice; mount each service once")
        _apply_read_limit(app, self.max_message_bytes)
        quiet_app(app)
        self._services[name] = app
        self._lifespan_apps.append(app)
        methods = _service_methods(name)
        if methods is None:
            self._opaque[path + "/"] = app
            return
        limit = self.max_message_bytes + _ENVELOPE_PREFIX
        for method, client_streaming in methods.items():
            self._methods[f"{path}/{method}"] = _Route(app, None if client_streaming else limit)

    def mount(self, prefix: str, app: ASGIApp) -> None:
        """Route every path starting with ``prefix`` to a plain ASGI app.

        The app sees the full ``path`` and ``root_path`` extended by the prefix (ASGI spec).
        Longer prefixes win. Lifespan is forwarded to it as well.
        """
        if not prefix.startswith("/"):
            raise ValueError(f"route prefix must start with '/', got {prefix!r}")
        self._prefixes.append((prefix, app))
        self._prefixes.sort(key=lambda item: len(item[0]), reverse=True)
        self._lifespan_apps.append(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            route = self._methods.get(path)
            exchange = _Exchange(send)
            refused = check_request_bytes(scope["headers"], scope.get("query_string", b""))
            if refused is not None:
                await send_refusal(scope, exchange.send, refused)
                return
            if route is not None:
                # The hot path: checked inline, the app awaited here (no extra coroutines).
                if _grpc_without_trailers(scope):
                    await send_error(scope, exchange.send, Code.UNIMPLEMENTED, _NEEDS_HTTP2)
                    return
                limit = route.max_body
                if limit is not None:
                    raw = _header(scope, b"content-length")
                    if (
                        raw is not None
                        and not (raw.isdigit() and int(raw) <= limit)
                        and not await self._length_ok(scope, exchange, limit)
                    ):
                        return
                try:
                    await route.app(scope, receive, exchange.send)
                except Exception:
                    await self._failed(scope, exchange)
                return
            await self._dispatch_other(path, scope, receive, exchange)
        elif kind == "lifespan":
            await forward_lifespan(self._lifespan_apps, scope, receive, send)
        else:
            # websockets: nothing here speaks them; closing is the ASGI way to refuse.
            await send({"type": "websocket.close", "code": 1003})

    async def _dispatch_other(
        self, path: str, scope: Scope, receive: Receive, exchange: _Exchange
    ) -> None:
        for prefix, app in self._prefixes:
            if path.startswith(prefix):
                if _grpc_without_trailers(scope):  # a relayed answer would lose its status
                    await send_error(scope, exchange.send, Code.UNIMPLEMENTED, _NEEDS_HTTP2)
                    return
                child = dict(scope)
                child["root_path"] = scope.get("root_path", "") + prefix.rstrip("/")
                await self._run(app, child, receive, exchange, exchange.send)
                return
        service_end = path.find("/", 1)
        if service_end > 0:
            opaque = self._opaque.get(path[: service_end + 1])
            if opaque is not None:
                limit = self.max_message_bytes + _ENVELOPE_PREFIX
                if _grpc_without_trailers(scope):
                    await send_error(scope, exchange.send, Code.UNIMPLEMENTED, _NEEDS_HTTP2)
                elif await self._length_ok(scope, exchange, limit):
                    rewrite = _NotFoundToUnimplemented(scope, exchange.send)
                    await self._run(opaque, scope, receive, exchange, rewrite)
                return
        await send_error(scope, exchange.send, Code.UNIMPLEMENTED, _unknown(scope))

    async def _length_ok(self, scope: Scope, exchange: _Exchange, limit: int) -> bool:
        raw = _header(scope, b"content-length")
        if raw is None:
            return True
        try:
            length = int(raw)
        except ValueError:
            await send_error(
                scope, exchange.send, Code.INVALID_ARGUMENT, "malformed Content-Length header"
            )
            return False
        if length <= limit:
            return True
        await send_error(
            scope,
            exchange.send,
            Code.RESOURCE_EXHAUSTED,
            f"request body of {length} bytes exceeds the limit of {self.max_message_bytes} "
            "bytes; send a smaller message or raise PLUGIN_DI_MAX_MESSAGE_BYTES on the server",
        )
        return False

    @classmethod
    async def _run(
        cls, app: ASGIApp, scope: Scope, receive: Receive, exchange: _Exchange, send: Send
    ) -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            await cls._failed(scope, exchange)

    @staticmethod
    async def _failed(scope: Scope, exchange: _Exchange) -> None:
        # connectrpc re-raises a non-Connect error after answering it; the ASGI server would
        # log it again and may drop the connection. Log it once, keep serving, and answer
        # INTERNAL if nothing was answered yet (no exception text on the wire). Called from
        # an ``except`` block, so the log carries the traceback.
        log.exception("unhandled error serving %s", scope.get("path"))
        if not exchange.started:
            await send_error(scope, exchange.send, Code.INTERNAL, "internal error")


class _Exchange:
    """One request's send, remembering whether the answer has started (an unhandled error
    is then answered INTERNAL only when nothing went out yet)."""

    __slots__ = ("_send", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    def send(self, message: Message) -> Awaitable[None]:
        # A plain function handing back the server's own awaitable: no extra coroutine.
        self.started = True
        return self._send(message)
