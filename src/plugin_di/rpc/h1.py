"""A lean HTTP/1.1 transport for pyqwest clients, over Unix sockets or TCP.

pyqwest (Rust reqwest) cannot dial a Unix socket, and its per-call cost dominates loopback
calls. ``H1Transport`` implements pyqwest's public ``Transport`` protocol, so the generated
Connect clients, their interceptors and protocol code run unchanged on top of it. It keeps a
pool of keep-alive connections over asyncio streams and speaks just enough HTTP/1.1 for
Connect and gRPC-Web: content-length and chunked bodies both ways, streamed response bodies
(server streams), trailers ignored. HTTP/1.1 cannot carry the gRPC protocol or full-duplex
bidi streams; use the HTTP/2 transport for those.

Failure handling: a pooled connection the server closed while idle is retried once on a new
connection (only when no response byte arrived and the body can be sent again); a call that
is cancelled (a deadline, a caller giving up) or a response abandoned half-read drops its
connection instead of returning it to the pool; ``read_timeout`` bounds every socket read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from pyqwest import Headers, HTTPVersion, ReadError, Request, Response

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc._http1 import decode_body, decode_stream, split_url

__all__ = ["H1Transport"]

_MAX_HEAD_BYTES = 64 * 1024
# Bodies up to this size are written before the answer is read (they fit the socket buffers);
# larger and streamed ones are written while the answer is watched for.
_INLINE_BODY_BYTES = 64 * 1024
_NO_BODY_STATUS = frozenset({204, 304})
_RETRYABLE = (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError, EOFError)


class _StaleConnection(Exception):
    """The server closed a pooled connection before answering."""


@dataclass(slots=True)
class _Head:
    status: int
    headers: Headers
    keep_alive: bool
    body: bytes | None = None  # None: the body streams (chunked or until close)


@dataclass(slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    reused: bool = False

    def close(self) -> None:
        self.writer.close()

    @property
    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())


class H1Transport:
    """pyqwest ``Transport`` speaking HTTP/1.1 with keep-alive, on a Unix socket or TCP.

    Give ``unix_path`` to dial a Unix socket (the URL's host is then only the Host header);
    without it the URL's ``host:port`` is dialled over TCP. ``idle_timeout`` drops pooled
    connections idle for longer (measured on ``clock``; keep it below the server's keep-alive
    timeout). ``read_timeout`` bounds each socket read, ``connect_timeout`` each dial.
    """

    def __init__(
        self,
        *,
        unix_path: str | None = None,
        max_idle: int = 64,
        idle_timeout: float = 60.0,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._unix_path = unix_path
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._clock = clock
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._closed = False

    @property
    def idle_connections(self) -> int:
        """How many keep-alive connections wait in the pool."""
        return sum(len(conns) for conns in self._idle.values())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection; calls after this fail."""
        self._closed = True
        conns = [conn for pool in self._idle.values() for conn in pool]
        self._idle.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()

    async def execute(self, request: Request) -> Response:
        """Send ``request`` and return its response; the body may still be streaming."""
        if self._closed:
            raise ConnectionError("the HTTP/1.1 transport is closed; create a new client")
        host, port, target = split_url(request.url)
        content = request.content
        replayable = content is None or isinstance(content, bytes | bytearray)
        conn = await self._checkout(host, port)
        try:
            return await self._exchange(conn, host, port, target, request, content)
        except _StaleConnection:
            if not replayable:
                raise ConnectionResetError(
                    "the pooled connection was closed by the server"
                ) from None
        # The server closed the idle connection before reading our request: nothing was
        # processed, so one retry on a fresh connection is safe.
        conn = await self._dial(host, port)
        try:
            return await self._exchange(conn, host, port, target, request, content)
        except _StaleConnection as exc:
            raise ConnectionResetError("the server closed the connection before answering") from exc

    async def _exchange(
        self,
        conn: _Conn,
        host: str,
        port: int,
        target: str,
        request: Request,
        content: bytes | bytearray | AsyncIterator[bytes] | None,
    ) -> Response:
        try:
            if content is None or (
                isinstance(content, bytes | bytearray) and len(content) <= _INLINE_BODY_BYTES
            ):
                await self._send_request(conn, host, port, target, request, content)
                head = await self._read_head(conn, request.method)
            else:
                head = await self._send_while_reading(conn, host, port, target, request, content)
        except _RETRYABLE as exc:
            conn.close()
            if conn.reused:
                raise _StaleConnection from exc
            raise ReadError(f"connection lost before the response: {exc!r}") from exc
        except BaseException:
            # Cancelled (deadline, caller gone), timed out or failed: the connection is in an
            # unknown state, so it is dropped rather than pooled.
            conn.close()
            raise
        key = (host, port)
        headers = head.headers
        if head.body is not None:
            self._release(conn, key, head.keep_alive)
            return _response(head.status, headers, decode_body(headers, head.body))
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        body_stream = self._stream_body(
            conn, key, chunked=chunked, keep_alive=head.keep_alive and chunked
        )
        encoding = headers.get("content-encoding", "identity")
        if encoding in ("identity", ""):
            return _response(head.status, headers, body_stream)
        return _response(head.status, headers, decode_stream(encoding, body_stream))

    async def _send_while_reading(
        self,
        conn: _Conn,
        host: str,
        port: int,
        target: str,
        request: Request,
        content: bytes | bytearray | AsyncIterator[bytes],
    ) -> _Head:
        """Write a large or streamed body while watching for an early answer.

        A server may answer before it has read the whole body (a body above its size limit)
        and close the connection; writing first would only see the reset and lose the answer.
        """
        writing = asyncio.create_task(
            self._send_request(conn, host, port, target, request, content)
        )
        reading = asyncio.create_task(self._read_head(conn, request.method))
        try:
            await asyncio.wait((writing, reading), return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                failure = writing.exception()
                if failure is not None and not isinstance(failure, OSError):
                    raise failure  # the request body itself failed (e.g. its iterator raised)
            head = await reading
            if not writing.done() or writing.exception() is not None:
                head.keep_alive = False  # answered early: the rest of the body is not wanted
            return head
        finally:
            for task in (writing, reading):
                if not task.done():
                    task.cancel()
            await asyncio.gather(writing, reading, return_exceptions=True)

    async def _send_request(
        self,
        conn: _Conn,
        host: str,
        port: int,
        target: str,
        request: Request,
        content: bytes | bytearray | AsyncIterator[bytes] | None,
    ) -> None:
        lines = [f"{request.method} {target} HTTP/1.1\r\n"]
        headers = request.headers
        if "host" not in headers:
            authority = host if self._unix_path is not None else f"{host}:{port}"
            lines.append(f"host: {authority}\r\n")
        for name, value in headers.items():
            lines.append(f"{name}: {value}\r\n")
        writer = conn.writer
        if content is None or isinstance(content, bytes | bytearray):
            body = bytes(content or b"")
            if body or request.method not in ("GET", "HEAD"):
                lines.append(f"content-length: {len(body)}\r\n")
            lines.append("\r\n")
            head = "".join(lines).encode("latin-1")
            if len(body) <= _INLINE_BODY_BYTES:
                writer.write(head + body)
                await self._drain(writer)
                return
            writer.write(head)
            await self._drain(writer)
            await _send_beside_transport(writer, body)
            return
        lines.append("transfer-encoding: chunked\r\n\r\n")
        writer.write("".join(lines).encode("latin-1"))
        async for chunk in content:
            if chunk:
                writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await self._drain(writer)
        writer.write(b"0\r\n\r\n")
        await self._drain(writer)

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        if self._read_timeout is None:
            await writer.drain()
        else:
            async with asyncio.timeout(self._read_timeout):
                await writer.drain()

    async def _read_head(self, conn: _Conn, method: str) -> _Head:
        """Read the status line and headers, and a content-length body right away.

        Reading the body without yielding to the loop matters: a server that answered early
        and closed makes the next socket read fail, and asyncio's StreamReader then raises
        that error even for data it already holds.
        """
        while True:
            raw = await self._read_until(conn, b"\r\n\r\n")
            text = raw.decode("latin-1")
            status_line, _, rest = text.partition("\r\n")
            version, _, status_rest = status_line.partition(" ")
            if not version.startswith("HTTP/1."):
                raise ReadError(f"not an HTTP/1.x response: {status_line[:80]!r}")
            status = int(status_rest[:3])
            if status == 100:  # interim "continue": the real head follows
                continue
            pairs: list[tuple[str, str]] = []
            for line in rest.split("\r\n"):
                if line:
                    name, _, value = line.partition(":")
                    pairs.append((name.strip().lower(), value.strip()))
            headers = Headers(pairs)
            connection = headers.get("connection", "").lower()
            keep_alive = "close" not in connection and version != "HTTP/1.0"
            head = _Head(status, headers, keep_alive)
            if method == "HEAD" or status in _NO_BODY_STATUS or status < 200:
                head.body = b""
                return head
            length = headers.get("content-length")
            if length is not None and "chunked" not in headers.get("transfer-encoding", ""):
                try:
                    head.body = await self._read_exact(conn, int(length))
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    # Not retryable: the server has answered.
                    raise ReadError(f"connection lost while reading the response: {exc!r}") from exc
            return head

    async def _read_until(self, conn: _Conn, separator: bytes) -> bytes:
        try:
            if self._read_timeout is None:
                return await conn.reader.readuntil(separator)
            async with asyncio.timeout(self._read_timeout):
                return await conn.reader.readuntil(separator)
        except asyncio.LimitOverrunError as exc:
            raise ReadError("response header section is too large") from exc

    async def _read_exact(self, conn: _Conn, size: int) -> bytes:
        if self._read_timeout is None:
            return await conn.reader.readexactly(size)
        async with asyncio.timeout(self._read_timeout):
            return await conn.reader.readexactly(size)

    async def _read_some(self, conn: _Conn) -> bytes:
        if self._read_timeout is None:
            return await conn.reader.read(65536)
        async with asyncio.timeout(self._read_timeout):
            return await conn.reader.read(65536)

    async def _stream_body(
        self, conn: _Conn, key: tuple[str, int], *, chunked: bool, keep_alive: bool
    ) -> AsyncGenerator[bytes]:
        done = False
        try:
            if chunked:
                while True:
                    size_line = await self._read_until(conn, b"\r\n")
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        # Trailer section (ignored) ends with an empty line.
                        while (await self._read_until(conn, b"\r\n")) != b"\r\n":
                            pass
                        break
                    data = await self._read_exact(conn, size + 2)
                    yield data[:-2]
            else:
                # No framing: the body runs until the server closes the connection.
                while chunk := await self._read_some(conn):
                    yield chunk
            done = True
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ReadError(f"connection lost while reading the response body: {exc!r}") from exc
        finally:
            if done:
                self._release(conn, key, keep_alive)
            else:
                # Abandoned half-read, cancelled or failed: the rest of the body is still on
                # the wire, so the connection cannot be reused.
                conn.close()

    async def _checkout(self, host: str, port: int) -> _Conn:
        pool = self._idle.get((host, port))
        now = self._clock.now()
        while pool:
            conn = pool.pop()
            if conn.usable and now - conn.idle_since < self._idle_timeout:
                conn.reused = True
                return conn
            conn.close()
        return await self._dial(host, port)

    async def _dial(self, host: str, port: int) -> _Conn:
        try:
            if self._unix_path is not None:
                opening = asyncio.open_unix_connection(self._unix_path, limit=_MAX_HEAD_BYTES)
            else:
                opening = asyncio.open_connection(host, port, limit=_MAX_HEAD_BYTES)
            reader, writer = await asyncio.wait_for(opening, self._connect_timeout)
        except TimeoutError as exc:
            raise ConnectionError(f"connecting to {self._where(host, port)} timed out") from exc
        except OSError as exc:
            raise ConnectionError(
                f"cannot connect to {self._where(host, port)}: {exc.strerror or exc}; "
                "is the plugin running?"
            ) from exc
        return _Conn(reader, writer)

    def _where(self, host: str, port: int) -> str:
        return f"unix:{self._unix_path}" if self._unix_path is not None else f"{host}:{port}"

    def _release(self, conn: _Conn, key: tuple[str, int], keep_alive: bool) -> None:
        if not keep_alive or self._closed or not conn.usable:
            conn.close()
            return
        pool = self._idle.setdefault(key, [])
        if len(pool) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = self._clock.now()
        conn.reused = False
        pool.append(conn)


async def _send_beside_transport(writer: asyncio.StreamWriter, body: bytes) -> None:
    """Write a large body through a duplicate of the socket's descriptor.

    A server that refuses a body (too large) answers and closes without reading it. Writing
    through the asyncio transport, the resulting EPIPE would close the socket and discard the
    answer still unread in it; a failed write on a duplicate descriptor leaves the original
    open, so the answer can be read.
    """
    sock = writer.get_extra_info("socket")
    if sock is None:  # not a plain socket transport: fall back to the transport
        writer.write(body)
        await writer.drain()
        return
    duplicate = socket.socket(fileno=os.dup(sock.fileno()))
    try:
        duplicate.setblocking(False)
        await asyncio.get_running_loop().sock_sendall(duplicate, body)
    finally:
        duplicate.close()


def _response(status: int, headers: Headers, content: bytes | AsyncIterator[bytes]) -> Response:
    return Response(status=status, http_version=HTTPVersion.HTTP1, headers=headers, content=content)
