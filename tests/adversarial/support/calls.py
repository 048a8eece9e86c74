"""RPC calls written by hand in each protocol, over the raw HTTP of `wire`.

``protocol`` is ``connect`` (Connect unary, or Connect streaming for a streaming method),
``grpc-web`` (over HTTP/1.1) or ``grpc`` (over HTTP/2: hypercorn surfaces only).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from .answers import answer_code
from .servers import Method, Surface
from .wire import Endpoint, H2Request, Headers, Reply, h1_exchange, h1_request, h2_exchange

PROTOCOLS = ("connect", "grpc-web", "grpc")


def envelope(message: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(message)) + message


def wire_protocol(protocol: str, method: Method) -> str:
    """How the answer is read: Connect streaming for a streaming method over Connect."""
    if protocol == "connect" and not method.unary:
        return "connect-stream"
    return protocol


def content_type(protocol: str, method: Method, codec: str = "proto") -> bytes:
    kind = wire_protocol(protocol, method)
    return {
        "connect": b"application/" + codec.encode(),
        "connect-stream": b"application/connect+" + codec.encode(),
        "grpc-web": b"application/grpc-web+" + codec.encode(),
        "grpc": b"application/grpc+" + codec.encode(),
    }[kind]


def body_of(protocol: str, method: Method, message: bytes) -> bytes:
    """The request body: the bare message for Connect unary, else one enveloped message."""
    return message if wire_protocol(protocol, method) == "connect" else envelope(message)


def supports(surface: Surface, protocol: str) -> bool:
    return protocol != "grpc" or surface.h2


async def call(
    surface: Surface,
    protocol: str,
    method: Method,
    message: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    content: bytes | None = None,
    within: float = 5.0,
) -> Reply:
    """One call to ``method`` in ``protocol``; ``headers`` may replace the content type;
    ``content`` replaces the whole body."""
    names = {name for name, _ in headers}
    sent: Headers = list(headers)
    if b"content-type" not in names:
        sent.append((b"content-type", content_type(protocol, method)))
    if protocol == "grpc":
        sent.append((b"te", b"trailers"))
    body = body_of(protocol, method, message) if content is None else content
    endpoint = Endpoint.from_url(surface.url)
    if protocol == "grpc":
        return await h2_exchange(
            endpoint, H2Request(method.path.encode(), sent, [body]), within=within
        )
    request = h1_request("POST", method.path.encode(), [*sent, (b"connection", b"close")], body)
    return await h1_exchange(endpoint, request, within=within)


async def call_code(
    surface: Surface,
    protocol: str,
    method: Method,
    message: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> tuple[str, Reply]:
    reply = await call(surface, protocol, method, message, headers)
    return answer_code(reply, wire_protocol(protocol, method)), reply
