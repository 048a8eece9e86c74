"""The host router's span for one routed call, and the code its answer carried.

The span is a SERVER span, child of the trace context the caller sent (W3C ``traceparent``
by default, whatever propagator is global); the forwarded headers carry the router's own
span instead, so the provider's server span is its child. The call's code comes from the
answer: ``grpc-status`` (headers or trailers), or a Connect error's JSON ``code``, or the
HTTP status; a call relayed as bytes (the host's splice) has none unless the router
refused it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from connectrpc.code import Code
from opentelemetry.metrics import Histogram
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context

from plugin_di.rpc.asgi import GRPC_STATUS, Message, Send

__all__ = ["RoutedCall"]

ROUTE_PROVIDER = "plugin_di.provider"
_CODE_OF_GRPC_STATUS = {"0": "ok", **{str(n): code.value for code, n in GRPC_STATUS.items()}}
_CODE_OF_HTTP_STATUS = {  # Connect's HTTP-to-code mapping, for answers without a code
    400: Code.INTERNAL.value,
    401: Code.UNAUTHENTICATED.value,
    403: Code.PERMISSION_DENIED.value,
    404: Code.UNIMPLEMENTED.value,
    429: Code.UNAVAILABLE.value,
    502: Code.UNAVAILABLE.value,
    503: Code.UNAVAILABLE.value,
    504: Code.UNAVAILABLE.value,
}
_TRACE_HEADERS_MAX = 8
_CONNECT_ERROR_BODY_MAX = 64 * 1024


class _Carrier(dict[str, str]):
    """What the propagator reads from (the caller's headers) and writes to."""


class RoutedCall:
    """One routed call's span and duration (`plugin_di.rpc.telemetry.RouteCall`)."""

    __slots__ = ("_code", "_duration", "_ended", "_error_body", "_method", "_provider",
                 "_span", "_start", "headers")  # fmt: skip

    def __init__(
        self,
        tracer: Tracer,
        propagator: TextMapPropagator,
        duration: Histogram,
        method: str,
        provider: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self._start = time.perf_counter()
        self._duration = duration
        self._method = method
        self._provider = provider
        self._code: str | None = None
        self._ended = False
        self._error_body: bytes | None = None
        names = set(propagator.fields)
        incoming = _Carrier()
        forwarded: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            text = name.decode("latin-1")
            if text in names:
                incoming[text] = value.decode("latin-1")
            else:
                forwarded.append((name, value))
        parent = propagator.extract(incoming)
        self._span = tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"rpc.system.name": "connectrpc", "rpc.method": method,
                        ROUTE_PROVIDER: provider},
        )  # fmt: skip
        outgoing = _Carrier()
        # the caller's context (its baggage) with the router's span in it
        propagator.inject(outgoing, context=set_span_in_context(self._span, parent))
        for key, text in list(outgoing.items())[:_TRACE_HEADERS_MAX]:
            forwarded.append((key.encode("latin-1"), text.encode("latin-1")))
        self.headers = forwarded

    def observe(self, send: Send) -> Send:
        """``send``, reading the code of the answer as it passes."""

        async def observed(message: Message) -> None:
            self._watch(message)
            await send(message)

        return observed

    def _watch(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            status = int(message.get("status", 200))
            headers = _text_headers(message.get("headers", ()))
            grpc_status = headers.get("grpc-status")
            if grpc_status is not None:
                self._code = _CODE_OF_GRPC_STATUS.get(grpc_status, Code.UNKNOWN.value)
            elif status != 200:
                self._code = _CODE_OF_HTTP_STATUS.get(status, Code.UNKNOWN.value)
                if headers.get("content-type", "").startswith("application/json"):
                    self._error_body = b""
        elif kind == "http.response.body" and self._error_body is not None:
            body = self._error_body + bytes(message.get("body", b""))
            self._error_body = body[:_CONNECT_ERROR_BODY_MAX]
            if not message.get("more_body", False):
                self._code = _connect_error_code(self._error_body) or self._code
                self._error_body = None
        elif kind == "http.response.trailers":
            grpc_status = _text_headers(message.get("headers", ())).get("grpc-status")
            if grpc_status is not None:
                self._code = _CODE_OF_GRPC_STATUS.get(grpc_status, Code.UNKNOWN.value)

    def end(self, code: str | None = None) -> None:
        """End the span and record the duration, with the call's code when it failed;
        once (a refused splice is ended again when its connection is released)."""
        if self._ended:
            return
        self._ended = True
        code = code or self._code
        attributes: dict[str, Any] = {"rpc.method": self._method, ROUTE_PROVIDER: self._provider}
        if code is not None and code != "ok":
            attributes["rpc.response.status_code"] = code
            self._span.set_attribute("rpc.response.status_code", code)
            self._span.set_status(Status(StatusCode.ERROR, code))
        self._duration.record(time.perf_counter() - self._start, attributes)
        self._span.end()


def _text_headers(raw: Any) -> dict[str, str]:
    return {bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1") for k, v in raw}


def _connect_error_code(body: bytes) -> str | None:
    """The ``code`` of a Connect error body, if it is one."""
    try:
        found = json.loads(body)
    except ValueError:
        return None
    code = found.get("code") if isinstance(found, dict) else None
    return code if isinstance(code, str) else None
