"""Routed Connect unary calls on the host's short path: checked, then spliced.

Through ASGI, a routed call costs the host a whole request cycle plus the router.
On cleartext HTTP/1.1 the server asks its short paths first
(`plugin_di.rpc.serving.shortpath`), and `RoutedShortPaths` takes a Connect unary call to
``/services/...`` whose provider speaks HTTP/1.1 on cleartext (``http://``, ``unix://``
or its alias ``http+h1fast://``) and does only what the router must, with no task and no await:
the path parsed from the request line by the router's one parse
(`plugin_di.host.routepath`: a malformed one is refused here, INVALID_ARGUMENT), the same
`ServiceRouter.route` checks (credentials, the caller's rate, registration, the method,
health), the same credentials stripped, only ``/{Service}/{Method}`` forwarded, and the
same per-provider in-flight count that blue-green ``drain`` waits on. The request then
goes to the provider and its answer back to the caller as bytes (`plugin_di.host.splice`).

Everything else goes through the ASGI router: streams, gRPC-Web, chunked bodies, and
providers reached over HTTP/2, TLS or in process.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.host._proxy import is_unary, split_credentials
from plugin_di.host.routepath import SERVICES_PREFIX, RouteTarget, parse_route_path
from plugin_di.host.router import ServiceRouter
from plugin_di.host.splice import SPLICE_SCHEMES, Refuse, SplicePool, splice_authority
from plugin_di.rpc.asgi import DEFAULT_MAX_MESSAGE_BYTES, error_response
from plugin_di.rpc.serving.shortpath import Answer, Exchange, Headers, ShortPathHandler
from plugin_di.rpc.telemetry import RouteCall
from plugin_di.rpc.telemetry import current as current_telemetry

__all__ = ["RoutedShortPaths"]

_PREFIX = SERVICES_PREFIX.encode()


class RoutedShortPaths:
    """The `ShortPaths` of a host's listeners: routed Connect unary calls."""

    def __init__(self, router: ServiceRouter, *, max_body: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._router = router
        self._max_body = max_body
        self._pool = SplicePool()
        self._hosts: dict[str, bytes] = {}

    def match(self, method: bytes, path: bytes, headers: Headers) -> ShortPathHandler | None:
        """A handler for a routed Connect unary POST to an HTTP/1.1 provider, else None."""
        if method != b"POST" or not path.startswith(_PREFIX):
            return None
        length = -1
        for name, value in headers:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"transfer-encoding":
                return None
        if not 0 <= length <= self._max_body or not is_unary(headers):
            return None
        try:
            target = parse_route_path(path)
        except ConnectError as error:
            return functools.partial(_refuse_with, error)
        upstream = self._router.upstream_of(target)
        if upstream is not None and not upstream.url.startswith(SPLICE_SCHEMES):
            return None  # HTTP/2, TLS or in process: the ASGI router serves those
        return functools.partial(self._start, target)

    def close(self) -> None:
        """Close the idle provider connections."""
        self._pool.close()

    def _start(self, route: RouteTarget, exchange: Exchange) -> None:
        runtime_id, authorization, headers = split_credentials(exchange.headers)
        router = self._router
        try:
            provider, target, upstream = router.route(route, runtime_id, authorization)
        except ConnectError as error:
            _refuse(exchange, error.code, error.message)
            return
        url = upstream.url
        if upstream.app is not None or not url.startswith(SPLICE_SCHEMES):
            # Registered elsewhere since the head was read: rare; the caller retries.
            _refuse(exchange, Code.UNAVAILABLE, f"provider {provider!r} moved; call again")
            return
        done = router.tracker(provider).leave
        refuse: Refuse = functools.partial(_unreachable, provider)
        telemetry = current_telemetry()  # the router's span: its context travels on
        if telemetry is not None:
            call = telemetry.route(target[1:], provider, headers)
            headers, done, refuse = call.headers, _ending(call, done), _refusing(call, refuse)
        body = exchange.body
        head = [b"POST ", target.encode("latin-1"), b" HTTP/1.1\r\n", self._host(url)]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head += (b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body)
        router.tracker(provider).enter()
        self._pool.send(url, b"".join(head), exchange, done=done, refuse=refuse)

    def _host(self, url: str) -> bytes:
        line = self._hosts.get(url)
        if line is None:
            line = self._hosts[url] = f"host: {splice_authority(url)}\r\n".encode()
        return line


def _ending(call: RouteCall, done: Callable[[], None]) -> Callable[[], None]:
    def ended() -> None:
        done()
        # The splice calls ``refuse`` right after ``done`` when it refuses: end on the next
        # tick, so that a refusal ends the call first, with its code (the first end counts).
        asyncio.get_running_loop().call_soon(call.end)

    return ended


def _refusing(call: RouteCall, refuse: Refuse) -> Refuse:
    def refused(exchange: Exchange, why: str) -> None:
        call.end(Code.UNAVAILABLE.value)
        refuse(exchange, why)

    return refused


def _unreachable(provider: str, exchange: Exchange, why: str) -> None:
    _refuse(exchange, Code.UNAVAILABLE, f"provider {provider!r} is unreachable: {why}")


def _refuse_with(error: ConnectError, exchange: Exchange) -> None:
    _refuse(exchange, error.code, error.message)


def _refuse(exchange: Exchange, code: Code, message: str) -> None:
    content_type = next((v for k, v in exchange.headers if k == b"content-type"), b"")
    status, headers, body = error_response(content_type, code, message)
    exchange.respond(Answer(status, headers, body))
