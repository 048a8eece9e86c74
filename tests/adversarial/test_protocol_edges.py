"""Requests a protocol cannot carry get their code, never connectrpc's exception text."""

from __future__ import annotations

import asyncio
import urllib.parse

from .support.answers import answer_code, answer_message, leaks
from .support.calls import envelope
from .support.servers import Surface
from .support.wire import Endpoint, h1_exchange, h1_request


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


REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def test_deeply_nested_json_is_refused_not_a_crash_of_the_process() -> None:
    # protobuf-py's JSON parser (the reflection services use it) recursed until the process
    # died with SIGSEGV: one unauthenticated request killed any plugin, or the host. Served
    # in a child process, so that a regression fails this test instead of the test run.
    from tests.support.processes import SERVE_KV, running

    deep = b"[" * 200_000
    with running(SERVE_KV) as kv:
        endpoint = Endpoint.from_url(kv.url)
        for kind, protocol in (
            (b"application/connect+json", "connect-stream"),
            (b"application/grpc-web+json", "grpc-web"),
        ):
            raw = h1_request("POST", REFLECTION.encode(), [(b"content-type", kind)], envelope(deep))
            reply = asyncio.run(h1_exchange(endpoint, raw))
            assert (answer_code(reply, protocol), leaks(reply)) == ("invalid_argument", [])
            assert "nested deeper" in answer_message(reply, protocol)
        assert kv.proc.poll() is None, "the plugin process died"
