"""The asyncio HTTP/1.1 connection of `plugin_di.rpc.h1.H1Transport` (its I/O).

Each pooled connection is an asyncio ``Protocol`` with its own buffer; heads are parsed by
the shared codec (`plugin_di.rpc._http1`), and a buffered call is completed in
``data_received`` so its caller wakes once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import cast

from pyqwest import ReadError

from plugin_di.rpc._http1 import MAX_HEAD_BYTES, Head, chunk_size, parse_head

RETRYABLE = (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError, EOFError)


class Connection(asyncio.Protocol):
    """One keep-alive connection: a byte buffer, its waiters, and flow control."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float | None) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self.eof = False
        self._lost: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self._closed = loop.create_future()
        self._timeout: asyncio.Timeout | None = None
        # The fast path: a whole buffered answer, parsed in data_received.
        self._full: asyncio.Future[Head] | None = None
        self._full_method = "POST"
        self._full_head: Head | None = None
        self._full_start = 0
        self.idle_since = 0.0
        self.reused = False

    # --- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's do not subclass asyncio.Transport, so no isinstance.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._full is not None:
            timeout = self._timeout
            if timeout is not None and self._read_timeout is not None and not timeout.expired():
                timeout.reschedule(self._loop.time() + self._read_timeout)
            self._advance_full()
        elif self._waiter is not None:
            self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # nothing more can arrive: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._lost = exc
        if self._full is not None:
            self._advance_full()
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("connection lost while writing"))
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # --- state ----------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        """Open, and nothing unasked-for arrived (e.g. a 408 sent before an idle close)."""
        transport = self.transport
        return (
            not self.eof and not self._buf and transport is not None and not transport.is_closing()
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        await self._closed

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # --- writing --------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        self.transport.write(data)

    async def drain(self) -> None:
        transport = self.transport
        if self._lost is not None or transport is None or transport.is_closing():
            raise ConnectionResetError("connection lost while writing")
        if not self._paused:
            return
        self._drain = self._loop.create_future()
        async with asyncio.timeout(self._read_timeout):
            await self._drain

    # --- reading (the streaming path) -----------------------------------------------------

    async def _more(self) -> None:
        """Wait for bytes or the end of the connection."""
        if self.eof:
            raise asyncio.IncompleteReadError(bytes(self._buf), None)
        self._waiter = self._loop.create_future()
        try:
            if self._read_timeout is None:
                await self._waiter
            else:
                async with asyncio.timeout(self._read_timeout):
                    await self._waiter
        finally:
            self._waiter = None

    async def readuntil(self, separator: bytes) -> bytes:
        start = 0
        while True:
            index = self._buf.find(separator, start)
            if 0 <= index <= MAX_HEAD_BYTES:
                end = index + len(separator)
                data = bytes(self._buf[:end])
                del self._buf[:end]
                return data
            if len(self._buf) > MAX_HEAD_BYTES:
                raise ReadError("response header section is too large")
            start = max(0, len(self._buf) - len(separator) + 1)
            await self._more()

    async def readexactly(self, size: int) -> bytes:
        while len(self._buf) < size:
            await self._more()
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    async def read_some(self) -> bytes:
        if not self._buf:
            if self.eof:
                return b""
            with contextlib.suppress(asyncio.IncompleteReadError):
                await self._more()
        data = bytes(self._buf)
        self._buf.clear()
        return data

    # --- the buffered fast path -----------------------------------------------------------
    async def fetch(self, data: bytes, method: str) -> Head:
        """Write a whole request and wait for the whole answer (``head.body`` set)."""
        self._full = self._loop.create_future()
        self._full_method = method
        self._full_head = None
        try:
            self.write(data)
            if self._buf or self.eof:
                self._advance_full()
            if self._read_timeout is None:
                return await self._full
            async with asyncio.timeout(self._read_timeout) as timeout:
                self._timeout = timeout
                return await self._full
        finally:
            self._full = None
            self._timeout = None

    def _advance_full(self) -> None:
        future = self._full
        assert future is not None
        if future.done():
            return
        try:
            head = self._complete_answer()
        except BaseException as exc:  # a malformed answer fails the call, not the loop
            future.set_exception(exc)
            return
        if head is not None:
            future.set_result(head)
        elif self.eof:
            got = bool(self._buf) or self._full_head is not None
            lost = self._lost or ConnectionResetError("the server closed the connection")
            if got:
                future.set_exception(
                    ReadError(f"connection lost while reading the response: {lost!r}")
                )
            else:
                future.set_exception(
                    lost if isinstance(lost, RETRYABLE) else ConnectionResetError(str(lost))
                )

    def _complete_answer(self) -> Head | None:
        buf = self._buf
        head = self._full_head
        while head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0 or end > MAX_HEAD_BYTES:
                if len(buf) > MAX_HEAD_BYTES:  # however it arrived, at once or in pieces
                    raise ReadError("response header section is too large")
                return None
            parsed = parse_head(buf[: end + 4], self._full_method)
            del buf[: end + 4]
            if parsed is not None:
                head = self._full_head = parsed
        if head.body is not None:
            return head
        if head.chunked:
            body = complete_chunked(buf)
            if body is None:
                return None
            head.body = body
            return head
        if head.length is not None:
            if len(buf) < head.length:
                return None
            head.body = bytes(buf[: head.length])
            del buf[: head.length]
            return head
        if not self.eof:  # no framing: the body runs until the server closes
            return None
        head.body = bytes(buf)
        head.keep_alive = False
        buf.clear()
        return head


def complete_chunked(buf: bytearray) -> bytes | None:
    """The whole chunked body at the start of ``buf`` (consumed), or None while incomplete."""
    parts: list[bytes] = []
    pos = 0
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = chunk_size(buf[pos:line_end])
        pos = line_end + 2
        if size == 0:
            # Trailer section (ignored) ends with an empty line.
            while True:
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                empty = line_end == pos
                pos = line_end + 2
                if empty:
                    del buf[:pos]
                    return b"".join(parts)
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


async def send_beside_transport(conn: Connection, body: bytes) -> None:
    """Write a large body through a duplicate of the socket's descriptor.

    A server that refuses a body (too large) answers and closes without reading it. Writing
    through the asyncio transport, the resulting EPIPE would close the socket and discard the
    answer still unread in it; a failed write on a duplicate descriptor leaves the original
    open, so the answer can be read.
    """
    sock = conn.transport.get_extra_info("socket") if conn.transport is not None else None
    if sock is None:  # not a plain socket transport: fall back to the transport
        conn.write(body)
        await conn.drain()
        return
    duplicate = socket.socket(fileno=os.dup(sock.fileno()))
    try:
        duplicate.setblocking(False)
        await asyncio.get_running_loop().sock_sendall(duplicate, body)
    finally:
        duplicate.close()
