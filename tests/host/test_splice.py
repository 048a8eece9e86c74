"""Routed unary calls spliced by the host's fast channel (host/shortroute + host/splice).

Real servers on Unix sockets: the host's fast channel, providers served by uvicorn, and
raw providers that misbehave on purpose (close before answering, answer half).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.gen.capability.logger.v1 import logger_pb2
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.host.server import Host
from plugin_di.plugin.host_client import HostClient
from plugin_di.rpc.transport import unix_socket_path
from tests.support.host import RecordingLogger, join_host, logger_plugin, served_fast

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_provider(serve: Serve) -> AsyncIterator[str]:
    """A provider that is a bare Unix socket server running ``serve``; its unix:// URL."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "raw.sock")
        server = await asyncio.start_unix_server(serve, path)
        try:
            yield "unix://" + path
        finally:
            server.close()
            await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def _routed_logger(host: Host, url: str) -> tuple[HostClient, LoggerClient, str]:
    assert host.local_url is not None
    provider = await join_host(host.local_url, logger_plugin(), "logger", url)
    assert provider.identity is not None
    found = await provider.discover("logger")
    return (
        provider,
        provider.routed_client(LoggerClient, found.endpoint),
        provider.identity.runtime_id,
    )


async def test_the_request_reaches_the_provider_rewritten_and_stripped(fast_host: Host) -> None:
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\nx-raw: 1\r\n"
            b"content-length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    async with raw_provider(serve) as url:
        provider, client, _pid = await _routed_logger(fast_host, url)
        try:
            await client.log(logger_pb2.LogRequest(message="hi"))
        finally:
            await provider.close()
    (request,) = seen
    head = request.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"post /capability.logger.v1.logger/log http/1.1\r\n")
    assert b"authorization" not in head
    assert b"x-plugin-runtime-id" not in head
    assert request.endswith(logger_pb2.LogRequest(message="hi").SerializeToString())


async def test_a_provider_restart_is_survived_by_the_pool(fast_host: Host) -> None:
    logger = RecordingLogger()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "p.sock")
        async with served_at(path, logger):
            provider, client, _pid = await _routed_logger(fast_host, "unix://" + path)
            await client.log(logger_pb2.LogRequest(message="one"))
        # The provider stopped, so the host's pooled connection to it is closed; a new
        # provider serves at the same path.
        async with served_at(path, logger):
            try:
                await client.log(logger_pb2.LogRequest(message="two"))
            finally:
                await provider.close()
    assert logger.lines == ["[] one", "[] two"]


@contextlib.asynccontextmanager
async def served_at(path: str, logger: RecordingLogger) -> AsyncIterator[None]:
    from plugin_di.plugin.runtime import PluginServer
    from plugin_di.rpc.serving import bind_socket

    server = PluginServer(logger_plugin(logger), grace_period=1.0)
    bound = bind_socket("unix:" + path)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(bound, ready=ready.set))
    async with asyncio.timeout(5):
        await ready.wait()
    try:
        yield
    finally:
        server.request_stop(0.5, "test over")
        async with asyncio.timeout(10):
            await task


async def test_a_provider_that_closes_before_answering_is_unavailable(fast_host: Host) -> None:
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await _read_request(reader)
        requests += 1
        writer.close()

    async with raw_provider(serve) as url:
        provider, client, pid = await _routed_logger(fast_host, url)
        try:
            with pytest.raises(ConnectError) as info:
                await client.log(logger_pb2.LogRequest(message="x"))
        finally:
            await provider.close()
    assert info.value.code is Code.UNAVAILABLE
    assert requests == 1  # a new connection is not retried: the provider may have acted
    assert fast_host.router.in_flight(pid) == 0


async def test_half_an_answer_drops_the_callers_connection(fast_host: Host) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\ncontent-length: 10\r\n\r\nabc"
        )
        await writer.drain()
        writer.close()

    async with raw_provider(serve) as url:
        provider, client, pid = await _routed_logger(fast_host, url)
        try:
            with pytest.raises(ConnectError) as info:
                await client.log(logger_pb2.LogRequest(message="x"))
            assert info.value.code is Code.UNAVAILABLE
            assert fast_host.router.in_flight(pid) == 0
        finally:
            await provider.close()


async def test_bytes_after_the_answer_never_reach_the_caller(fast_host: Host) -> None:
    """A provider that appends a forged second answer cannot hand it to the caller's next
    call on the same connection (which may be addressed to another provider)."""
    forged = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\ncontent-length: 6\r\n\r\nforged"
    )

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\ncontent-length: 0\r\n\r\n"
        writer.write(answer + forged)  # one write: one read on the host
        await writer.drain()
        await reader.read()  # keep the connection open until the host closes it

    logger = RecordingLogger()
    async with raw_provider(serve) as url, served_fast(logger_plugin(logger)) as honest_url:
        provider, client, _pid = await _routed_logger(fast_host, url)
        honest = await join_host(fast_host.local_url or "", logger_plugin(), "logger", honest_url)
        try:
            with pytest.raises(ConnectError) as info:
                await client.log(logger_pb2.LogRequest(message="x"))
            assert info.value.code is Code.UNAVAILABLE
            assert honest.identity is not None
            route = f"/services/logger/{honest.identity.runtime_id}"
            endpoint = registry_pb2.ServiceEndpoint(endpoint_url=route)
            to_honest = provider.routed_client(LoggerClient, endpoint)
            await to_honest.log(logger_pb2.LogRequest(message="next"))  # not the forged answer
            assert logger.lines == ["[] next"]
        finally:
            await honest.close()
            await provider.close()


async def test_a_slow_caller_holds_back_the_provider(fast_host: Host) -> None:
    """Backpressure: the host stops reading a big answer while the caller does not read."""
    size = 16 * 1024 * 1024
    written = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        piece = b"x" * 65536
        while written < size:
            writer.write(piece)
            await writer.drain()
            written += len(piece)
        await reader.read()

    async with raw_provider(serve) as url:
        provider, _client, pid = await _routed_logger(fast_host, url)
        assert provider.identity is not None
        assert fast_host.local_url is not None
        body = logger_pb2.LogRequest(message="big").SerializeToString()
        request = (
            f"POST /services/logger/{pid}/capability.logger.v1.Logger/Log HTTP/1.1\r\n"
            f"host: x\r\ncontent-type: application/proto\r\ncontent-length: {len(body)}\r\n"
            f"authorization: Bearer {provider.identity.runtime_token}\r\n"
            f"x-plugin-runtime-id: {pid}\r\n\r\n"
        ).encode() + body
        reader, writer = await asyncio.open_unix_connection(unix_socket_path(fast_host.local_url))
        try:
            writer.write(request)
            last, steady = -1, 0
            for _ in range(500):  # until the provider is held back (bounded: 5 s)
                steady = steady + 1 if written == last else 0
                if steady >= 20 and written > 0:
                    break
                last = written
                await asyncio.sleep(0.01)
            assert 0 < written < size // 2  # held back, not buffered whole in the host
            received = 0
            while received < size:
                chunk = await asyncio.wait_for(reader.read(1 << 20), 10)
                assert chunk
                received += len(chunk)
            assert written == size
        finally:
            writer.close()
            await provider.close()


async def test_calls_in_flight_are_counted_and_a_gone_caller_cancels(fast_host: Host) -> None:
    logger = RecordingLogger(gate=asyncio.Event())
    async with served_fast(logger_plugin(logger)) as url:
        provider, client, pid = await _routed_logger(fast_host, url)
        try:
            call = asyncio.create_task(client.log(logger_pb2.LogRequest(message="slow")))
            for _ in range(500):
                if logger.headers:
                    break
                await asyncio.sleep(0.01)
            assert fast_host.router.in_flight(pid) == 1  # what blue-green drain waits on
            call.cancel()  # the caller goes away: its connection closes
            with contextlib.suppress(asyncio.CancelledError, ConnectError):
                await call
            for _ in range(500):
                if fast_host.router.in_flight(pid) == 0:
                    break
                await asyncio.sleep(0.01)
            assert fast_host.router.in_flight(pid) == 0
            logger.gate.set()
            await client.log(logger_pb2.LogRequest(message="after"))
            assert logger.lines == ["[] after"]  # the abandoned call never finished
        finally:
            await provider.close()


async def test_idle_connections_a_provider_closed_are_forgotten() -> None:
    """A pool keeps no dead connections (nor the URL) of providers that went away."""
    from plugin_di.host.splice import SplicePool, _Connection

    closers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        closers.append(writer)
        await reader.read()

    pool = SplicePool()
    async with raw_provider(serve) as url:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_unix_connection(
            lambda: _Connection(pool, url), unix_socket_path(url)
        )
        pool.release(url, connection)
        assert url in pool._idle
        for _ in range(500):  # until the provider saw the connection (bounded: 5 s)
            if closers:
                break
            await asyncio.sleep(0.01)
        closers[0].close()  # the provider goes away
        for _ in range(500):
            if url not in pool._idle:
                break
            await asyncio.sleep(0.01)
        assert url not in pool._idle
        assert connection.closed
    pool.close()
