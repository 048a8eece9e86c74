"""Requests a protocol cannot carry get their code, never connectrpc's exception text."""

from __future__ import annotations

import urllib.parse

from .calls import envelope
from .servers import Surface
from .wire import Endpoint, answer_code, h1_exchange, h1_request, leaks


async def test_grpc_over_http1_is_unimplemented_not_a_runtime_error(surface: Surface) -> None:
    # gRPC needs trailers; HTTP/1.1 (hypercorn's h11, uvicorn) has none. connectrpc raised a
    # RuntimeError there and sent its text as UNKNOWN; a router relayed it from a provider.
    for content_type in (b"application/grpc", b"application/grpc+proto"):
        raw = h1_request(
            "POST",
            surface.valid.path.encode(),
            [(b"content-type", content_type)],
            envelope(surface.valid.request),
        )
        reply = await h1_exchange(Endpoint.from_url(surface.url), raw)
        assert (answer_code(reply, "grpc"), leaks(reply)) == ("unimplemented", [])
        assert "HTTP/2" in urllib.parse.unquote((reply.header(b"grpc-message") or b"").decode())
