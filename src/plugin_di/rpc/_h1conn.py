"""HTTP/1.1 connections and response parsing for `plugin_di.rpc.h1.H1Transport`.

Each pooled connection is an asyncio ``Protocol`` with its own buffer; a response head
is parsed once per distinct head (a small cache), and a buffered call is completed in
``data_received`` so its caller wakes once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import cast

from pyqwest import Headers, ReadError

MAX_HEAD_BYTES = 64 * 1024
# Bodies up to this size are written before the answer is read (they fit the socket buffers);
# larger and streamed ones are written while the answer is watched for.
INLINE_BODY_BYTES = 64 * 1024
NO_BODY_STATUS = frozenset({204, 304})
RETRYABLE = (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError, EOFError)
NO_TRAILERS = Headers()
IDENTITY_DEFAULTS = frozenset({"content-encoding", "accept-encoding"})

RequestBody = bytes | bytearray | memoryview | None


class StaleConnection(Exception):
    """The server closed a pooled connection before answering."""


@dataclass(slots=True)
class Head:
    """A parsed response head (and the body, when it arrived with the head)."""

    status: int
    headers: Headers
    keep_alive: bool
    body: bytes | None = None  # None: the body streams (chunked or until close)
    chunked: bool = False
    length: int | None = None


# Parsed response heads by their bytes: a plugin answers with a handful of distinct heads,
# so most calls skip parsing. Cleared when full.
HEAD_CACHE: dict[bytes, tuple[int, list[tuple[str, str]], bool, int | None, bool]] = {}
HEAD_CACHE_SIZE = 256


def parse_head(raw: bytes | bytearray, method: str) -> Head | None:
    """Parse a response head (status line and headers, ending ``\\r\\n\\r\\n``).

    Returns None for an interim 1xx answer, which the real head follows.
    """
    key = bytes(raw)
    parsed = HEAD_CACHE.get(key)
    if parsed is None:
        parsed = parse_head_text(key.decode("latin-1"))
        if len(HEAD_CACHE) >= HEAD_CACHE_SIZE:
            HEAD_CACHE.clear()
        HEAD_CACHE[key] = parsed
    status, pairs, keep_alive, length, chunked = parsed
    if 100 <= status < 200 and status != 101:
        return None
    head = Head(status, Headers(pairs), keep_alive)
    if method == "HEAD" or status in NO_BODY_STATUS or status < 200:
        head.body = b""
    elif chunked:
        head.chunked = True
    else:
        head.length = length
    return head


def parse_head_text(text: str) -> tuple[int, list[tuple[str, str]], bool, int | None, bool]:
    status_line, _, rest = text.partition("\r\n")
    version, _, status_rest = status_line.partition(" ")
    if not version.startswith("HTTP/1."):
        raise ReadError(f"not an HTTP/1.x response: {status_line[:80]!r}")
    status = int(status_rest[:3])
    pairs: list[tuple[str, str]] = []
    length: int | None = None
    chunked = False
    keep_alive = version != "HTTP/1.0"
    for line in rest.split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            pairs.append((name, value))
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection" and "close" in value.lower():
                keep_alive = False
    return status, pairs, keep_alive, length, chunked


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
            if index >= 0:
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
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
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
        size = int(bytes(buf[pos:line_end]).split(b";", 1)[0].strip(), 16)
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
