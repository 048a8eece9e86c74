"""Helpers for tests of the server (`plugin_di.rpc.serving`): a server in the test's loop, and
raw HTTP/1.1 and HTTP/2 clients that can say what well-behaved clients never would."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from hyperframe.frame import HeadersFrame

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc.serving import (
    Limits,
    Listener,
    ServeConfig,
    Server,
    ShortPaths,
    bind_socket,
)

IO_TIMEOUT = 10.0


@contextlib.asynccontextmanager
async def running(
    app: Any,
    *,
    limits: Limits | None = None,
    grace_period: float = 5.0,
    clock: Clock = SYSTEM_CLOCK,
    tls: ssl.SSLContext | None = None,
    short_paths: ShortPaths | None = None,
) -> AsyncIterator[tuple[Server, str, int]]:
    """A server on 127.0.0.1:0 in this loop until the block ends: (server, host, port)."""
    bound = bind_socket("127.0.0.1:0")
    host, port = bound.address.rsplit(":", 1)
    server = Server(
        app,
        Listener(bound, tls),
        ServeConfig(limits or Limits(), grace_period=grace_period),
        short_paths=short_paths,
        clock=clock,
    )
    await server.start()
    try:
        yield server, host, int(port)
    finally:
        async with asyncio.timeout(IO_TIMEOUT):
            await server.stop()


async def wait_until(condition: Any, *, what: str, turns: int = 2000) -> None:
    """Let the loop run until ``condition()`` holds (bounded in loop turns and time)."""
    async with asyncio.timeout(IO_TIMEOUT):
        for _ in range(turns):
            if condition():
                return
            await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response with a content-length body: (head, body)."""
    async with asyncio.timeout(IO_TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = await reader.readexactly(length) if length else b""
    return head, body


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed the connection (read until EOF, bounded in time)."""
    async with asyncio.timeout(IO_TIMEOUT):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return True
            if not chunk:
                return True


@dataclass
class H2Stream:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None


class RawH2:
    """An HTTP/2 client over plain asyncio streams, driven by the h2 library by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.streams: dict[int, H2Stream] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int) -> RawH2:
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        client.conn.initiate_connection()
        await client.flush()
        return client

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    def request(
        self,
        path: str,
        *,
        body: bytes = b"",
        end: bool = True,
        content_type: bytes = b"application/proto",
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
            (b"content-type", content_type),
            *extra,
        ]
        self.conn.send_headers(stream_id, headers, end_stream=end and not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.streams[stream_id] = H2Stream()
        return stream_id

    def send_raw_request(self, stream_id: int, path: str) -> None:
        """Open a stream by writing its HEADERS frame by hand, past any limit h2 would keep."""
        block = self.conn.encoder.encode(
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":authority", b"x"),
                (b":path", path.encode()),
            ]
        )
        frame = HeadersFrame(stream_id, data=block, flags=["END_HEADERS", "END_STREAM"])
        self.writer.write(frame.serialize())

    async def pump(self) -> bool:
        """Read once and handle what arrived; False once the server closed the connection."""
        async with asyncio.timeout(IO_TIMEOUT):
            try:
                data = await self.reader.read(65536)
            except ConnectionResetError:
                data = b""
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:  # e.g. frames for a stream opened by hand
            self.closed = True
            return False
        for event in events:
            stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and stream is not None:
                stream.headers = list(event.headers)
            elif isinstance(event, h2.events.DataReceived) and stream is not None:
                stream.data += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived) and stream is not None:
                stream.trailers = list(event.headers)
            elif isinstance(event, h2.events.StreamEnded) and stream is not None:
                stream.ended = True
            elif isinstance(event, h2.events.StreamReset) and stream is not None:
                stream.reset = event.error_code
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway = event
        await self.flush()
        return True

    async def until(self, condition: Any, *, what: str, reads: int = 500) -> None:
        for _ in range(reads):
            if condition():
                return
            if not await self.pump():
                break
        if not condition():
            raise AssertionError(f"never happened over HTTP/2: {what}")

    def close(self) -> None:
        self.writer.close()
