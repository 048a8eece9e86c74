"""A Connect error written straight to ASGI in the caller's protocol, with no connectrpc app.

`ServiceMux` and the host's router answer what they refuse themselves (unknown routes,
oversized bodies, headers that do not decode, bad credentials) with these: Connect unary as
an HTTP status and a JSON body, Connect streaming as an end-of-stream message, gRPC as a
trailers-only response, gRPC-Web as a trailer frame.
"""

from __future__ import annotations

import json
import struct
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from connectrpc.code import Code

from plugin_di.rpc.header_bytes import UNSUPPORTED_MEDIA_TYPE_HEADERS, HeaderRefusal

__all__ = ["GRPC_STATUS", "error_response", "request_header", "send_error", "send_refusal"]

_Scope = MutableMapping[str, Any]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# gRPC status numbers follow the order of connectrpc's Code enum (canceled = 1 ... 16).
GRPC_STATUS: dict[Code, int] = {code: number for number, code in enumerate(Code, start=1)}

# Connect unary errors: the HTTP status of each code (the Connect protocol's table), except
# that an unknown route is a 404, as connect-go's mux answers.
_HTTP_STATUS: dict[Code, int] = {
    Code.CANCELED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 404,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


def request_header(scope: _Scope, name: bytes) -> bytes | None:
    """The first request header ``name`` (lower case: ASGI servers lower-case names)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


async def send_error(scope: _Scope, send: _Send, code: Code, message: str) -> None:
    """Answer the request with a Connect error, in the protocol its content-type names
    (see `error_response`)."""
    content_type = request_header(scope, b"content-type") or b""
    status, headers, body = error_response(content_type, code, message)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_refusal(scope: _Scope, send: _Send, refused: HeaderRefusal) -> None:
    """Answer a request whose headers do not decode (`plugin_di.rpc.header_bytes`)."""
    if refused.code is not None:
        await send_error(scope, send, refused.code, refused.message)
        return
    headers = [*UNSUPPORTED_MEDIA_TYPE_HEADERS, (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 415, "headers": headers})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def error_response(
    content_type: bytes, code: Code, message: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A Connect error as (status, headers, body) in the protocol ``content_type`` names.

    Connect unary: an HTTP error status and a JSON body. Connect streaming: HTTP 200 and an
    end-of-stream message. gRPC: a trailers-only response (HTTP 200, ``grpc-status`` in the
    headers). gRPC-Web: HTTP 200 and a trailer frame. No content-length.
    """
    base = content_type.decode("latin-1").lower().split(";", 1)[0].strip()
    body: bytes
    if base.startswith("application/grpc-web"):
        trailer = (
            f"grpc-status: {GRPC_STATUS[code]}\r\n"
            f"grpc-message: {urllib.parse.quote(message, safe='')}\r\n"
        ).encode()
        status = 200
        headers = [(b"content-type", base.encode("latin-1"))]
        body = struct.pack(">BI", 0x80, len(trailer)) + trailer
    elif base.startswith("application/grpc"):
        status = 200
        headers = [
            (b"content-type", base.encode("latin-1")),
            (b"grpc-status", str(GRPC_STATUS[code]).encode()),
            (b"grpc-message", urllib.parse.quote(message, safe="").encode()),
        ]
        body = b""
    elif base.startswith("application/connect+"):
        end = json.dumps({"error": {"code": code.value, "message": message}}).encode()
        status = 200
        headers = [(b"content-type", base.encode("latin-1"))]
        body = struct.pack(">BI", 0x02, len(end)) + end
    else:
        status = _HTTP_STATUS[code]
        headers = [(b"content-type", b"application/json")]
        body = json.dumps({"code": code.value, "message": message}).encode()
    return status, headers, body
