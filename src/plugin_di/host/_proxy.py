"""The router's HTTP plumbing: the caller's credentials split from the headers it forwards,
the request body, and relaying the provider's answer (status, headers, body, gRPC trailers)
back to the caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pyqwest

from plugin_di.host.auth import AUTHORIZATION_HEADER, RUNTIME_ID_HEADER
from plugin_di.rpc.asgi import Receive, Scope, Send

# The caller's credentials (never forwarded) and hop-by-hop headers.
_STRIP_REQUEST = frozenset(
    {
        b"authorization",
        b"x-plugin-runtime-id",
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)
_RUNTIME_ID = RUNTIME_ID_HEADER.encode()
_AUTHORIZATION = AUTHORIZATION_HEADER.encode()


def split_credentials(
    raw: Iterable[tuple[bytes, bytes]],
) -> tuple[str | None, str | None, list[tuple[bytes, bytes]]]:
    """One pass over request headers: (runtime id, authorization, the headers to forward)."""
    runtime_id: str | None = None
    authorization: str | None = None
    headers: list[tuple[bytes, bytes]] = []
    for key, value in raw:
        name = key.lower()
        if name in _STRIP_REQUEST:
            if name == _RUNTIME_ID:
                runtime_id = bytes(value).decode("latin-1")
            elif name == _AUTHORIZATION:
                authorization = bytes(value).decode("latin-1")
            continue
        headers.append((name, value))
    return runtime_id, authorization, headers


# Hop-by-hop headers, and the ones the host's own server writes (a copy would repeat them).
# Lower-case names: the header names of a pyqwest response are lower-case too.
STRIP_RESPONSE = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "date", "server"}
)


class Relay:
    """Sends a provider's response on to the caller, streaming; ``started`` once it began."""

    __slots__ = ("_scope", "_send", "started")

    def __init__(self, scope: Scope, send: Send) -> None:
        self._scope = scope
        self._send = send
        self.started = False

    async def __call__(self, response: pyqwest.Response | pyqwest.FullResponse) -> None:
        send = self._send
        response_headers = response.headers
        content_type = response_headers.get("content-type", "")
        grpc = content_type.startswith("application/grpc") and not content_type.startswith(
            "application/grpc-web"
        )
        trailers_only = "grpc-status" in response_headers
        can_trail = "http.response.trailers" in self._scope.get("extensions", {})
        use_trailers = grpc and not trailers_only and can_trail
        out_headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in response_headers.items()
            if k not in STRIP_RESPONSE
        ]
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": out_headers,
                "trailers": use_trailers,
            }
        )
        self.started = True
        content = response.content
        if isinstance(content, bytes):
            await send({"type": "http.response.body", "body": content, "more_body": False})
            return
        # The body is passed on chunk by chunk as it arrives (server streams), then trailers.
        async for chunk in content:
            await send({"type": "http.response.body", "body": bytes(chunk), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if use_trailers:
            trailers = [
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.trailers.items()
            ]
            await send(
                {"type": "http.response.trailers", "headers": trailers, "more_trailers": False}
            )


def is_unary(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request is a Connect unary call (``application/proto``/``json``): its answer
    is never streamed (streams use ``application/connect+...`` or gRPC types)."""
    for name, value in headers:
        if name == b"content-type":
            return value.startswith((b"application/proto", b"application/json"))
    return False


async def request_body(receive: Receive) -> bytes | AsyncIterator[bytes]:
    """The request body: the bytes when it came in one message (a unary call), else a stream
    that starts with the first chunk and passes the rest on as it arrives."""
    first = await receive()
    if first["type"] == "http.disconnect":
        return b""
    chunk: bytes = first.get("body", b"")
    if not first.get("more_body", False):
        return chunk

    async def rest() -> AsyncIterator[bytes]:
        if chunk:
            yield chunk
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            data = message.get("body", b"")
            if data:
                yield data
            if not message.get("more_body", False):
                return

    return rest()


def is_grpc_request(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request is the gRPC protocol: it needs HTTP/2 (`plugin_di.rpc.split`)."""
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"application/grpc") and not value.startswith(
                b"application/grpc-web"
            )
    return False
