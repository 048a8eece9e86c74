"""Exhaustion attacks on a listener: idle connections, slowloris, connection floods, HTTP/2
rapid reset and stream floods, header floods, slow readers. After each, the server holds no
connection, no request and no descriptor for the clients that left, and still serves.

The server runs in the test's loop on a FakeClock: its deadlines pass when the test says."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from plugin_di.clock import FakeClock
from plugin_di.rpc.serving import Limits, Server
from tests.support.servers import RawH2, closed_by_peer, read_response, running, wait_until

LIMITS = Limits(
    header_timeout=10.0,
    idle_timeout=20.0,
    max_connections=64,
    max_streams=8,
    max_header_bytes=8 * 1024,
    write_buffer_bytes=64 * 1024,
    max_resets=50,
)
CHUNK = 16 * 1024


class App:
    """/echo answers; /flood streams chunks as fast as the client lets it; /hold waits."""

    def __init__(self) -> None:
        self.flood_sent = 0
        self.cancelled = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            if scope["path"] == "/flood":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                while True:
                    await send(
                        {"type": "http.response.body", "body": b"x" * CHUNK, "more_body": True}
                    )
                    self.flood_sent += CHUNK
            if scope["path"] == "/hold":
                await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok", "more_body": False})
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _advance(clock: FakeClock, seconds: float) -> None:
    """Move the fake clock in steps, letting the server's sweeper run at each."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        await asyncio.sleep(0.01)


async def _still_serves(host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
    head, body = await read_response(reader)
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b"ok"
    writer.close()


async def _settled(server: Server, baseline_fds: int) -> None:
    await wait_until(lambda: server.connections == 0, what="every connection released")
    await wait_until(lambda: server.in_flight == 0, what="no request left in flight")
    await wait_until(lambda: _fds() <= baseline_fds, what="descriptors back to the baseline")


async def test_silent_connections_are_cut_at_the_header_timeout() -> None:
    clock = FakeClock()
    async with running(App(), limits=LIMITS, clock=clock) as (server, host, port):
        baseline = _fds()
        pairs = [await asyncio.open_connection(host, port) for _ in range(40)]
        await wait_until(lambda: server.connections == 40, what="40 connections open")
        await _advance(clock, LIMITS.header_timeout - 2)
        assert server.connections == 40  # not yet
        await _advance(clock, 3)
        for reader, writer in pairs:
            assert await closed_by_peer(reader)
            writer.close()
        await _settled(server, baseline)
        await _still_serves(host, port)


async def test_slowloris_heads_are_cut_however_they_trickle() -> None:
    clock = FakeClock()
    async with running(App(), limits=LIMITS, clock=clock) as (server, host, port):
        baseline = _fds()
        pairs = [await asyncio.open_connection(host, port) for _ in range(30)]
        for second in range(int(LIMITS.header_timeout) + 2):
            for _, writer in pairs:
                writer.write(b"GET /echo HTTP/1.1\r\n" if second == 0 else b"x-a: b\r\n")
            await _advance(clock, 1)
        for reader, writer in pairs:
            assert await closed_by_peer(reader)
            writer.close()
        await _settled(server, baseline)
        await _still_serves(host, port)


async def test_idle_keep_alive_connections_are_closed_after_the_idle_timeout() -> None:
    clock = FakeClock()
    async with running(App(), limits=LIMITS, clock=clock) as (server, host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
        await read_response(reader)
        await _advance(clock, LIMITS.idle_timeout - 2)
        writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")  # in time: the clock restarts
        await read_response(reader)
        await _advance(clock, LIMITS.idle_timeout + 2)
        assert await closed_by_peer(reader)
        writer.close()
        await wait_until(lambda: server.connections == 0, what="the idle connection closed")


async def test_connections_past_the_cap_are_closed_at_once() -> None:
    limits = Limits(max_connections=10)
    async with running(App(), limits=limits) as (server, host, port):
        held = [await asyncio.open_connection(host, port) for _ in range(10)]
        await wait_until(lambda: server.connections == 10, what="ten connections held")
        reader, writer = await asyncio.open_connection(host, port)
        assert await closed_by_peer(reader)
        writer.close()
        assert server.hubs[0].refused >= 1
        for _, held_writer in held[:5]:
            held_writer.close()
        await wait_until(lambda: server.connections == 5, what="five released")
        await _still_serves(host, port)
        for _, held_writer in held[5:]:
            held_writer.close()


async def test_closed_peers_release_their_descriptors_at_once() -> None:
    async with running(App(), limits=Limits(max_connections=1024)) as (server, host, port):
        baseline = _fds()
        pairs = []
        for _ in range(300):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
            pairs.append((reader, writer))
        for reader, _ in pairs:
            await read_response(reader)
        assert server.connections == 300
        for _, writer in pairs:
            writer.close()
        await _settled(server, baseline)  # no timeout passed: released on close


async def test_http2_rapid_reset_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    app = App()
    async with running(app, limits=LIMITS) as (server, host, port):
        baseline = _fds()
        client = await RawH2.connect(host, port)
        for _ in range(LIMITS.max_resets * 3):
            stream = client.request("/hold")
            client.conn.reset_stream(stream)
            try:
                await client.flush()
            except ConnectionError:
                break  # cut off while still resetting
            await asyncio.sleep(0)
        # GOAWAY(ENHANCE_YOUR_CALM) goes out, then the connection closes; a client still
        # sending may see the reset before it reads the GOAWAY.
        await client.until(lambda: client.goaway is not None or client.closed, what="the cut")
        if client.goaway is not None:
            assert client.goaway.error_code == 11  # ENHANCE_YOUR_CALM
        assert "rapid reset" in caplog.text
        client.close()
        await _settled(server, baseline)
        await _still_serves(host, port)


async def test_http2_stream_floods_past_the_limit_are_refused() -> None:
    app = App()
    async with running(app, limits=LIMITS) as (server, host, port):
        baseline = _fds()
        client = await RawH2.connect(host, port)
        await client.until(
            lambda: client.conn.remote_settings.max_concurrent_streams == LIMITS.max_streams,
            what="the server's SETTINGS",
        )
        for _ in range(LIMITS.max_streams):
            client.request("/hold")
        await client.flush()
        await wait_until(lambda: server.in_flight == LIMITS.max_streams, what="streams at the cap")
        client.send_raw_request(client.conn.highest_outbound_stream_id + 2, "/hold")
        await client.until(lambda: client.goaway is not None or client.closed, what="a refusal")
        client.close()
        app.release.set()
        await _settled(server, baseline)
        await _still_serves(host, port)


async def test_header_floods_are_refused_on_both_protocols() -> None:
    async with running(App(), limits=LIMITS) as (server, host, port):
        baseline = _fds()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\n")
        for i in range(2000):
            writer.write(b"x-h%d: %s\r\n" % (i, b"v" * 30))
        writer.write(b"\r\n")
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 431")
        writer.close()
        client = await RawH2.connect(host, port)
        client.request("/echo", extra=[(b"x-h%d" % i, b"v" * 30) for i in range(2000)])
        await client.flush()
        await client.until(lambda: client.goaway is not None or client.closed, what="a refusal")
        client.close()
        await _settled(server, baseline)
        await _still_serves(host, port)


@pytest.mark.parametrize("protocol", ["http1", "h2"])
async def test_slow_readers_hold_the_app_back_and_are_cut_when_idle(protocol: str) -> None:
    clock = FakeClock()
    app = App()
    async with running(app, limits=LIMITS, clock=clock) as (server, host, port):
        baseline = _fds()
        clients: list[Any] = []
        for _ in range(8):
            if protocol == "http1":
                _, writer = await asyncio.open_connection(host, port, limit=1024)
                writer.transport.set_write_buffer_limits(0)
                writer.write(b"GET /flood HTTP/1.1\r\nhost: x\r\n\r\n")
                writer.transport.pause_reading()  # read nothing from now on
                clients.append(writer)
            else:
                client = await RawH2.connect(host, port)
                client.request("/flood")
                await client.flush()
                clients.append(client)
        await wait_until(lambda: server.in_flight == 8, what="eight floods running")
        await asyncio.sleep(0.2)
        sent = app.flood_sent
        await asyncio.sleep(0.2)
        assert app.flood_sent == sent  # held back: nothing more is produced
        for hub in server.hubs:
            for connection in hub.connections:
                buffered = connection.transport.get_write_buffer_size()  # type: ignore[attr-defined]
                assert buffered <= LIMITS.write_buffer_bytes + CHUNK
        await _advance(clock, LIMITS.idle_timeout + 2)
        await wait_until(lambda: app.cancelled == 8, what="every flood cancelled")
        for client in clients:
            client.close()
        await _settled(server, baseline)
        await _still_serves(host, port)
