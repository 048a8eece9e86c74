"""Issue 13, defect 3: a refused stream ends at once with its error, in the protocol's
end-of-stream form, while its client still holds its half of the stream open.

Every refusal (rate limit, auth, header limits, a stream interceptor that refuses or
crashes, the handler's validation) on every stream kind (server, client, bidi), in every
protocol (Connect, gRPC, gRPC-Web), over HTTP/2 and HTTP/1.1, on every server kind. The
client sends one message and does not end its stream, as buf curl does with reflection (a
server stream's client ends its half after its one message, as every client does); each
answer must be complete within a few seconds.
"""

from __future__ import annotations

import asyncio
import queue
import shutil
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from examples.kv.gen.kv.v1 import kv_pb2
from plugin_di.clock import FakeClock
from plugin_di.host.tokens import TokenStore
from plugin_di.rpc.asgi import ServiceMux
from plugin_di.rpc.errors import SanitizeErrors
from plugin_di.rpc.interceptors import (
    HeaderLimits,
    Rate,
    RateLimitInterceptor,
    RateLimitPolicy,
    RuntimeTokenAuthenticator,
    ServerAuth,
    TokenBucketLimiter,
)

from .support.answers import answer_code, leaks
from .support.calls import content_type, envelope, wire_protocol
from .support.servers import SERVER_KINDS, Method, serve_app, serve_host
from .support.streams_service import (
    CHAT,
    COLLECT,
    FOLLOW,
    STREAM_METHODS,
    Streams,
    StreamsASGIApplication,
)
from .support.wire import Endpoint, H2Request, Reply, h1_exchange, h1_request, h2_exchange

WITHIN = 3.0  # seconds an answer may take; a refusal takes milliseconds
RATE = Rate(1e-6, 1)


class Refuse:
    """A stream interceptor refusing before the stream starts: with an error ``make``
    returns, or crashing."""

    def __init__(self, make: Callable[[], Exception]) -> None:
        self._make = make

    async def intercept_server_stream(self, call_next: Any, request: Any, ctx: Any) -> Any:
        raise self._make()
        yield  # an async generator, as connectrpc expects

    async def intercept_client_stream(self, call_next: Any, request: Any, ctx: Any) -> Any:
        raise self._make()

    async def intercept_bidi_stream(self, call_next: Any, request: Any, ctx: Any) -> Any:
        raise self._make()
        yield


def _exhausted_limiter() -> RateLimitInterceptor:
    limiter = TokenBucketLimiter(FakeClock())
    assert limiter.allow("all|*", RATE)  # the one token is gone
    return RateLimitInterceptor(RateLimitPolicy(RATE), limiter, key=lambda ctx: "all")


# refusal -> (interceptors, extra headers, first message's prefix, expected code)
REFUSALS: dict[str, tuple[list[Any], list[tuple[bytes, bytes]], str, str]] = {
    "rate limit": ([_exhausted_limiter()], [], "k", "resource_exhausted"),
    "auth": ([ServerAuth(RuntimeTokenAuthenticator(TokenStore()))], [], "k", "unauthenticated"),
    "header limits": (
        [HeaderLimits(max_value_bytes=32)],
        [(b"x-big", b"v" * 64)],
        "k",
        "invalid_argument",
    ),
    "interceptor": (
        [Refuse(lambda: ConnectError(Code.PERMISSION_DENIED, "no"))],
        [],
        "k",
        "permission_denied",
    ),
    "interceptor crash": ([Refuse(lambda: RuntimeError("secret=hunter2"))], [], "k", "internal"),
    "validation": ([], [], "bad", "invalid_argument"),
}


def _chain(refusers: list[Any]) -> list[Any]:
    """As the host orders them: header checks (metadata interceptors) lead, so they run
    before the body is read; stream interceptors follow SanitizeErrors."""
    if any(isinstance(r, Refuse) for r in refusers):
        return [SanitizeErrors(), *refusers]
    return [*refusers, SanitizeErrors()]


class ByRefusal:
    """One Streams service per refusal, chosen by the ``x-refusal`` request header."""

    def __init__(self) -> None:
        self.muxes = {
            name: ServiceMux([StreamsASGIApplication(Streams(), interceptors=_chain(icps))])
            for name, (icps, *_) in REFUSALS.items()
        }
        self.muxes["none"] = ServiceMux([StreamsASGIApplication(Streams())])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # the apps hold plain services: nothing to start
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        name = dict(scope["headers"]).get(b"x-refusal", b"none").decode()
        await self.muxes[name](scope, receive, send)


@pytest.fixture(params=SERVER_KINDS)
async def streams_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with serve_app(ByRefusal(), str(request.param)) as url:
        yield url


def _headers(refusal: str, protocol: str, method: Method) -> list[tuple[bytes, bytes]]:
    extra = REFUSALS[refusal][1] if refusal in REFUSALS else []
    headers = [(b"content-type", content_type(protocol, method)), (b"x-refusal", refusal.encode())]
    if protocol == "grpc":
        headers.append((b"te", b"trailers"))
    return headers + extra


def _message(refusal: str) -> bytes:
    prefix = REFUSALS[refusal][2] if refusal in REFUSALS else "k"
    return envelope(kv_pb2.WatchRequest(prefix=prefix).SerializeToString())


async def _held_open_h2(url: str, refusal: str, protocol: str, method: Method) -> Reply:
    request = H2Request(
        method.path.encode(),
        _headers(refusal, protocol, method),
        [_message(refusal)],
        end_stream=method is FOLLOW,  # a server-stream's client ends its half: one message
    )
    return await h2_exchange(Endpoint.from_url(url), request, within=WITHIN)


async def _held_open_h1(url: str, refusal: str, protocol: str, method: Method) -> Reply:
    message = _message(refusal)
    chunk = f"{len(message):x}\r\n".encode() + message + b"\r\n"  # no last chunk: held open
    if method is FOLLOW:
        chunk += b"0\r\n\r\n"
    headers = [*_headers(refusal, protocol, method), (b"transfer-encoding", b"chunked")]
    raw = h1_request("POST", method.path.encode(), headers, chunk, content_length=False)
    return await h1_exchange(Endpoint.from_url(url), raw, within=WITHIN)


Send = Callable[[str, str, str, Method], Awaitable[Reply]]


async def _check_all(url: str, send: Send, protocols: tuple[str, ...]) -> list[str]:
    wrong = []
    for refusal, (_, _, _, expected) in REFUSALS.items():
        for method in STREAM_METHODS:
            if refusal == "validation" and method is COLLECT:
                continue  # Collect reads the whole stream before it can find anything wrong
            for protocol in protocols:
                try:
                    reply = await send(url, refusal, protocol, method)
                except Exception as exc:
                    wrong.append(f"{refusal} {method.path} {protocol}: {exc!r}")
                    continue
                code = answer_code(reply, wire_protocol(protocol, method))
                if code != expected or leaks(reply):
                    wrong.append(f"{refusal} {method.path} {protocol}: {code} {leaks(reply)}")
                if refusal == "rate limit" and reply.header(b"retry-after") is None:
                    wrong.append(f"{refusal} {method.path} {protocol}: no retry-after")
    return wrong


async def test_refused_streams_end_at_once_over_http2(streams_url: str) -> None:
    wrong = await _check_all(streams_url, _held_open_h2, ("connect", "grpc", "grpc-web"))
    assert not wrong, "\n".join(wrong)


async def test_refused_streams_end_at_once_over_http1(streams_url: str) -> None:
    wrong = await _check_all(streams_url, _held_open_h1, ("connect", "grpc-web"))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
async def test_streams_that_are_not_refused_still_work(streams_url: str, http2: bool) -> None:
    endpoint = Endpoint.from_url(streams_url)
    for method in (FOLLOW, CHAT, COLLECT):
        for protocol in ("connect", "grpc") if http2 else ("connect", "grpc-web"):
            messages = [envelope(kv_pb2.WatchRequest(prefix=p).SerializeToString()) for p in "ab"]
            body = messages[:1] if method is FOLLOW else messages
            headers = _headers("none", protocol, method)
            if http2:
                reply = await h2_exchange(
                    endpoint, H2Request(method.path.encode(), headers, body), within=WITHIN
                )
            else:
                raw = h1_request("POST", method.path.encode(), headers, b"".join(body))
                reply = await h1_exchange(endpoint, raw, within=WITHIN)
            assert answer_code(reply, wire_protocol(protocol, method)) == "ok", (method, protocol)
            assert len(reply.body) > 0


async def test_a_refusal_does_not_wait_for_a_body_its_client_stalls() -> None:
    # A server stream's one message, declared longer than sent (HTTP/1.1) or never ended
    # (HTTP/2): the refusal is answered after a short pause, not when the client gives up.
    async with serve_app(ByRefusal(), "tcp") as url:
        endpoint = Endpoint.from_url(url)
        message = _message("auth")
        headers = _headers("auth", "connect", FOLLOW)
        raw = h1_request("POST", FOLLOW.path.encode(), headers, message, content_length=False)
        raw = raw.replace(b"\r\n\r\n", b"\r\ncontent-length: 1000\r\n\r\n", 1)
        stalled_h1 = await h1_exchange(endpoint, raw, within=WITHIN)
        stalled_h2 = await h2_exchange(
            endpoint,
            H2Request(FOLLOW.path.encode(), headers, [message], end_stream=False),
            within=WITHIN,
        )
    for reply in (stalled_h1, stalled_h2):
        assert answer_code(reply, "connect-stream") == "unauthenticated"


BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")


@pytest.mark.skipif(BUF is None, reason="buf is not installed (pip install buf-bin)")
@pytest.mark.parametrize(
    "flags",
    [
        ["--protocol", "connect", "--http2-prior-knowledge"],
        ["--protocol", "grpc", "--http2-prior-knowledge"],
        ["--protocol", "grpcweb", "--http2-prior-knowledge"],
        ["--protocol", "connect"],
        ["--protocol", "grpcweb"],
    ],
)
async def test_buf_curl_gets_the_rate_limit_of_reflection(flags: list[str]) -> None:
    # The case: buf curl opens reflection's bidi stream first; the host's limiter
    # refuses it. buf must get RESOURCE_EXHAUSTED and exit, not wait until it is killed.
    assert BUF is not None
    async with serve_host("tcp", rate_limit=RATE) as (host, surface):
        assert host.limiter is not None
        assert host.limiter.allow("ip:127.0.0.1|*", RATE)  # the caller's one token is gone
        process = await asyncio.create_subprocess_exec(
            BUF,
            "curl",
            *flags,
            "--list-services",
            surface.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(15):
                _, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode != 0
    assert b"resource_exhausted" in err, err


@pytest.mark.parametrize("method", STREAM_METHODS, ids=lambda m: m.path.rsplit("/", 1)[1])
def test_grpcio_gets_each_refusal_while_it_still_sends(method: Method) -> None:
    # One connection per call, so that each refusal meets a fresh connection as buf curl's
    # first call does.
    import grpc

    async def serve(ready: queue.Queue[str], stop: threading.Event) -> None:
        async with serve_app(ByRefusal(), "tcp") as url:
            ready.put(url)
            await asyncio.to_thread(stop.wait, 60)

    ready: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    server = threading.Thread(target=asyncio.run, args=(serve(ready, stop),), daemon=True)
    server.start()
    release = threading.Event()
    try:
        address = ready.get(timeout=10).removeprefix("http://")
        for refusal, (_, extra, prefix, expected) in REFUSALS.items():
            if refusal == "validation" and method is COLLECT:
                continue
            request = kv_pb2.WatchRequest(prefix=prefix)
            metadata = [("x-refusal", refusal), *((k.decode(), v.decode()) for k, v in extra)]
            own_connection = [("grpc.use_local_subchannel_pool", 1)]
            with grpc.insecure_channel(address, options=own_connection) as channel:
                invoke = _grpcio_call(channel, method, request, metadata, release)
                with pytest.raises(grpc.RpcError) as info:
                    invoke()
            assert info.value.code().name.lower() == expected, (refusal, info.value)
    finally:
        release.set()
        stop.set()
        server.join(15)


def _grpcio_call(
    channel: Any,
    method: Method,
    request: kv_pb2.WatchRequest,
    metadata: list[tuple[str, str]],
    release: threading.Event,
) -> Callable[[], object]:
    """A call of ``method`` whose client keeps its half open (but a server stream's)."""

    def held_open() -> Iterator[kv_pb2.WatchRequest]:
        yield request
        release.wait(10)

    options: dict[str, Any] = {
        "request_serializer": kv_pb2.WatchRequest.SerializeToString,
        "response_deserializer": lambda data: data,
    }
    call: Any
    if method is FOLLOW:
        call = channel.unary_stream(method.path, **options)
        return lambda: list(call(request, timeout=WITHIN, metadata=metadata))
    if method is COLLECT:
        call = channel.stream_unary(method.path, **options)
        return lambda: call(held_open(), timeout=WITHIN, metadata=metadata)
    call = channel.stream_stream(method.path, **options)
    return lambda: list(call(held_open(), timeout=WITHIN, metadata=metadata))
