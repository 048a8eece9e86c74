"""Raw HTTP/1.1 and HTTP/2 for adversarial tests: send exactly the bytes a test wants.

Clients refuse to send what an attacker sends (bytes that are not UTF-8 in headers, lying
lengths, broken framing), so this module writes requests by hand: HTTP/1.1 as raw bytes on a
socket, HTTP/2 through the ``h2`` state machine with header validation turned off. Every
exchange is bounded by a timeout; a server that does not answer in time is a finding, not a
hang. `answers` reads what came back.

Targets are URLs: ``http://127.0.0.1:PORT``, ``http+h1fast://127.0.0.1:PORT`` and
``unix:///path`` (never another address).
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

Headers = list[tuple[bytes, bytes]]


class NoAnswer(Exception):
    """The server closed the connection or stayed silent past the timeout without answering."""


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens: loopback TCP or a Unix socket."""

    host: str = ""
    port: int = 0
    path: str = ""

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        if url.startswith("unix://"):
            return cls(path=url.removeprefix("unix://"))
        parsed = urllib.parse.urlsplit(url)
        if parsed.hostname not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"adversarial tests only target loopback, not {url!r}")
        assert parsed.port is not None
        return cls(host=parsed.hostname, port=parsed.port)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(5):
            if self.path:
                return await asyncio.open_unix_connection(self.path, limit=1 << 24)
            return await asyncio.open_connection(self.host, self.port, limit=1 << 24)


async def close(writer: asyncio.StreamWriter) -> None:
    """Close a connection; abort it when it does not close at once (a peer not reading)."""
    writer.close()
    try:
        async with asyncio.timeout(1):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()


@dataclass
class Reply:
    """An HTTP answer: status, headers, body, and trailers (HTTP/2 or chunked)."""

    status: int
    headers: Headers
    body: bytes
    trailers: Headers = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        for key, value in [*self.headers, *self.trailers]:
            if key.lower() == name:
                return value
        return None


# --- HTTP/1.1 ------------------------------------------------------------------------------


def h1_request(
    method: str,
    path: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    content_length: bool = True,
    host: bytes = b"127.0.0.1",
) -> bytes:
    """The bytes of one HTTP/1.1 request (``content_length=False`` leaves the length out)."""
    lines = [method.encode() + b" " + path + b" HTTP/1.1", b"host: " + host]
    lines += [name + b": " + value for name, value in headers]
    if content_length:
        lines.append(b"content-length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def h1_exchange(endpoint: Endpoint, request: bytes, *, within: float = 5.0) -> Reply:
    """Send raw request bytes on a new connection and read one answer."""
    reader, writer = await endpoint.connect()
    try:
        async with asyncio.timeout(within):
            writer.write(request)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return await read_h1_reply(reader)
    except TimeoutError:
        raise NoAnswer(f"no answer within {within}s") from None
    finally:
        await close(writer)


async def read_h1_reply(reader: asyncio.StreamReader) -> Reply:
    """One HTTP/1.1 answer (1xx skipped): content-length, chunked, or until close."""
    while True:
        head = await _read_until(reader, b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise NoAnswer(f"not an HTTP answer: {lines[0][:80]!r}")
        status = int(parts[1])
        headers = _header_lines(lines[1:])
        if status >= 200:
            break
    reply = Reply(status, headers, b"")
    length = reply.header(b"content-length")
    if (reply.header(b"transfer-encoding") or b"").lower() == b"chunked":
        reply.body, reply.trailers = await _read_chunked(reader)
    elif length is not None:
        reply.body = await reader.readexactly(int(length))
    elif status not in (204, 304):
        reply.body = await reader.read()
    return reply


async def _read_until(reader: asyncio.StreamReader, end: bytes) -> bytes:
    try:
        return (await reader.readuntil(end))[: -len(end)]
    except asyncio.IncompleteReadError as exc:
        raise NoAnswer(f"connection closed after {len(exc.partial)} bytes") from None


def _header_lines(lines: Sequence[bytes]) -> Headers:
    headers: Headers = []
    for line in lines:
        name, _, value = line.partition(b":")
        if name:
            headers.append((name.strip().lower(), value.strip()))
    return headers


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, Headers]:
    body = bytearray()
    while True:
        size_line = await _read_until(reader, b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            break
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    trailer_lines = []
    while line := await _read_until(reader, b"\r\n"):
        trailer_lines.append(line)
    return bytes(body), _header_lines(trailer_lines)


# --- HTTP/2 --------------------------------------------------------------------------------


@dataclass
class H2Request:
    """One HTTP/2 request; ``data`` frames are sent in order, the last one ends the stream
    unless ``end_stream`` is False."""

    path: bytes
    headers: Headers
    data: Sequence[bytes] = (b"",)
    method: bytes = b"POST"
    end_stream: bool = True


def _h2_config() -> h2.config.H2Configuration:
    return h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )


async def h2_exchange(
    endpoint: Endpoint, request: H2Request, *, within: float = 5.0, authority: bytes = b"x"
) -> Reply:
    """Send one request on a new HTTP/2 (prior knowledge) connection and read its answer."""
    replies = await h2_exchange_many(endpoint, [request], within=within, authority=authority)
    reply = replies[0]
    if isinstance(reply, NoAnswer):
        raise reply
    return reply


async def h2_exchange_many(
    endpoint: Endpoint,
    requests: Sequence[H2Request],
    *,
    within: float = 5.0,
    authority: bytes = b"x",
) -> list[Reply | NoAnswer]:
    """Send requests as concurrent streams of one HTTP/2 connection; one answer (or
    `NoAnswer`) each, in order."""
    reader, writer = await endpoint.connect()
    conn = h2.connection.H2Connection(config=_h2_config())
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
    conn.increment_flow_control_window(1 << 24)
    streams: dict[int, Reply] = {}
    done: dict[int, Reply | NoAnswer] = {}
    pending: dict[int, list[bytes]] = {}
    order: list[int] = []
    for request in requests:
        stream_id = conn.get_next_available_stream_id()
        order.append(stream_id)
        pseudo = [
            (b":method", request.method),
            (b":scheme", b"http"),
            (b":path", request.path),
            (b":authority", authority),
        ]
        conn.send_headers(stream_id, pseudo + list(request.headers))
        pending[stream_id] = [bytes(chunk) for chunk in request.data]
        if not pending[stream_id] and request.end_stream:
            pending[stream_id] = [b""]
        streams[stream_id] = Reply(0, [], b"")
    ends = {sid: r.end_stream for sid, r in zip(order, requests, strict=True)}
    body: dict[int, bytearray] = {sid: bytearray() for sid in order}

    def pump() -> None:
        for sid, chunks in pending.items():
            while chunks:
                chunk = chunks[0]
                window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if len(chunk) > window:
                    if window <= 0:
                        break
                    conn.send_data(sid, chunk[:window])
                    chunks[0] = chunk[window:]
                    continue
                chunks.pop(0)
                last = not chunks and ends[sid]
                conn.send_data(sid, chunk, end_stream=last)

    try:
        async with asyncio.timeout(within):
            while len(done) < len(order):
                with contextlib.suppress(Exception):  # a stream the server already reset
                    pump()
                writer.write(conn.data_to_send())
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                data = await reader.read(1 << 16)
                if not data:
                    break
                events = conn.receive_data(data)
                for event in events:
                    _h2_event(event, streams, body, done)
                if any(isinstance(e, h2.events.ConnectionTerminated) for e in events):
                    break
    except (TimeoutError, ConnectionError, h2.exceptions.ProtocolError):
        pass
    finally:
        await close(writer)
    return [done.get(sid, NoAnswer(f"stream {sid}: no complete answer")) for sid in order]


def _h2_event(
    event: h2.events.Event,
    streams: dict[int, Reply],
    body: dict[int, bytearray],
    done: dict[int, Reply | NoAnswer],
) -> None:
    sid = getattr(event, "stream_id", 0)
    if sid not in streams or sid in done:
        return
    reply = streams[sid]
    if isinstance(event, h2.events.ResponseReceived):
        headers = [(bytes(k), bytes(v)) for k, v in event.headers]
        reply.status = int(dict(headers).get(b":status", b"0"))
        reply.headers = [(k, v) for k, v in headers if not k.startswith(b":")]
    elif isinstance(event, h2.events.DataReceived):
        body[sid] += event.data
    elif isinstance(event, h2.events.TrailersReceived):
        reply.trailers = [(bytes(k), bytes(v)) for k, v in event.headers]
    elif isinstance(event, h2.events.StreamEnded):
        reply.body = bytes(body[sid])
        done[sid] = reply
    elif isinstance(event, h2.events.StreamReset):
        done[sid] = NoAnswer(f"stream {sid} reset with error code {event.error_code}")
