"""Routed Connect unary calls answered on the host's fast channel without ASGI.

On the fast channel (`plugin_di.rpc.fastserve`, uvicorn with the short path of
`plugin_di.rpc.fastproto`) a routed call used to cost the host a whole uvicorn request
cycle plus the ASGI router. `RoutedShortPaths` takes a Connect unary call to
``/services/...`` whose provider is reached with the lean HTTP/1.1 transport, and does
only what the router must: the same `ServiceRouter.route` checks (credentials, the
caller's rate, registration, health), the same headers stripped, the body forwarded as
the bytes it came in, the provider's answer passed back in one write, and the same
per-provider in-flight count that blue-green ``drain`` waits on.

Everything else goes through the ASGI router: streams, gRPC-Web, chunked bodies, and
providers reached over HTTP/2 or in process.
"""

from __future__ import annotations

import functools
import logging

import pyqwest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.host._proxy import STRIP_RESPONSE, is_unary
from plugin_di.host.router import SERVICES_PREFIX, ServiceRouter, split_credentials
from plugin_di.rpc.asgi import DEFAULT_MAX_MESSAGE_BYTES, error_response
from plugin_di.rpc.fastproto import Answer, Headers, ShortPathHandler

__all__ = ["RoutedShortPaths"]

log = logging.getLogger(__name__)

_PREFIX = SERVICES_PREFIX.encode()
_UNREACHABLE = (OSError, TimeoutError, pyqwest.ReadError, pyqwest.WriteError)
_SKIP_RESPONSE = frozenset({*STRIP_RESPONSE, "content-length"})
_LEAN_SCHEMES = ("unix:", "http+h1fast://")  # the upstreams `ServiceRouter.lean` serves


class RoutedShortPaths:
    """The `ShortPaths` of a host's fast channel: routed Connect unary calls."""

    def __init__(self, router: ServiceRouter, *, max_body: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._router = router
        self._max_body = max_body

    def match(self, method: bytes, path: bytes, headers: Headers) -> ShortPathHandler | None:
        """A handler for a routed Connect unary POST to a lean upstream, else None."""
        if method != b"POST" or not path.startswith(_PREFIX) or b"%" in path:
            return None
        length = -1
        for name, value in headers:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"transfer-encoding":
                return None
        if not 0 <= length <= self._max_body or not is_unary(headers):
            return None
        text = path.decode("latin-1")
        upstream = self._router.upstream_of(text)
        if upstream is not None and not upstream.url.startswith(_LEAN_SCHEMES):
            return None  # HTTP/2, TLS or in process: the ASGI router serves those
        return functools.partial(self._call, text)

    async def _call(self, path: str, raw: Headers, body: bytes) -> Answer:
        runtime_id, authorization, headers = split_credentials(raw)
        content_type = next((v for k, v in headers if k == b"content-type"), b"")
        router = self._router
        try:
            provider, target, upstream = router.route(path, b"", runtime_id, authorization)
        except ConnectError as error:
            return _refusal(content_type, error.code, error.message)
        try:
            lean = router.lean(upstream)
        except Exception:
            log.exception("no transport for provider %s at %r", provider, upstream.url)
            return _refusal(content_type, Code.INTERNAL, "internal error in the host router")
        if lean is None:  # re-registered elsewhere since the head was read
            return _refusal(content_type, Code.UNAVAILABLE, "provider moved; call again")
        transport, base = lean
        pairs = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in headers
            # The lean transport undoes content-encoding itself: ask the provider for none.
            if k != b"accept-encoding"
        ]
        tracker = router.tracker(provider)
        tracker.enter()
        try:
            response = await transport.fetch("POST", base + target, pairs, body)
        except _UNREACHABLE as error:
            log.warning("routing to provider %s failed: %s", provider, error)
            return _refusal(content_type, Code.UNAVAILABLE, f"provider {provider!r} is unreachable")
        except Exception:
            log.exception("routing to provider %s failed unexpectedly", provider)
            return _refusal(content_type, Code.INTERNAL, "internal error in the host router")
        finally:
            tracker.leave()
        out = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in response.headers.items()
            if k not in _SKIP_RESPONSE
        ]
        return Answer(response.status, out, response.content)


def _refusal(content_type: bytes, code: Code, message: str) -> Answer:
    status, headers, body = error_response(content_type, code, message)
    return Answer(status, headers, body)
