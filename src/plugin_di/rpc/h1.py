"""A lean HTTP/1.1 transport for pyqwest clients, over Unix sockets or TCP.

pyqwest (Rust reqwest) cannot dial a Unix socket, and its per-call cost dominates loopback
calls. ``H1Transport`` implements pyqwest's public ``Transport`` protocol, so the generated
Connect clients, their interceptors and protocol code run unchanged on top of it. It keeps a
pool of keep-alive connections (each an asyncio ``Protocol`` with its own buffer) and speaks
just enough HTTP/1.1 for Connect and gRPC-Web: content-length and chunked bodies both ways,
streamed response bodies (server streams), trailers ignored. HTTP/1.1 cannot carry the gRPC
protocol or full-duplex bidi streams; use the HTTP/2 transport for those.

``fetch`` is the buffered fast path (``PluginHTTPClient`` routes unary calls to it): the
whole response is parsed as it arrives, in the connection's ``data_received``, and the caller
wakes once, with the complete answer.

Failure handling: a pooled connection the server closed while idle is retried once on a new
connection (only when no response byte arrived and the body can be sent again); a call that
is cancelled (a deadline, a caller giving up) or a response abandoned half-read drops its
connection instead of returning it to the pool; ``read_timeout`` bounds every wait for bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from pyqwest import FullResponse, Headers, HTTPVersion, ReadError, Request, Response

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc._h1conn import RETRYABLE, Connection, send_beside_transport
from plugin_di.rpc._http1 import (
    DECODED_ENCODINGS,
    IDLE_TIMEOUT,
    INLINE_BODY_BYTES,
    NO_TRAILERS,
    Head,
    HeadersArg,
    IdlePool,
    RequestBody,
    StaleConnection,
    as_headers,
    chunk_size,
    decode_body,
    decode_stream,
    encode_head,
    host_line,
    parse_head,
    split_url,
)

__all__ = ["H1Transport"]

_T = TypeVar("_T")


class H1Transport:
    """pyqwest ``Transport`` speaking HTTP/1.1 with keep-alive, on a Unix socket or TCP.

    Give ``unix_path`` to dial a Unix socket (the URL's host is then only the Host header);
    without it the URL's ``host:port`` is dialled over TCP. ``idle_timeout`` drops pooled
    connections idle for longer (measured on ``clock``; keep it below the server's keep-alive
    timeout). ``read_timeout`` bounds each wait for response bytes, ``connect_timeout`` each
    dial.
    """

    def __init__(
        self,
        *,
        unix_path: str | None = None,
        max_idle: int = 64,
        idle_timeout: float = IDLE_TIMEOUT,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._unix_path = unix_path
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool: IdlePool[Connection] = IdlePool(max_idle, idle_timeout, clock)

    @property
    def idle_connections(self) -> int:
        """How many keep-alive connections wait in the pool."""
        return len(self._pool)

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
        conns = self._pool.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.wait_closed()

    async def fetch(
        self, method: str, url: str, headers: HeadersArg = None, content: RequestBody = None
    ) -> FullResponse:
        """Send a request with an in-memory body and return the whole, decoded response.

        The buffered fast path behind ``PluginHTTPClient.post``/``get``/``execute``; same
        pooling, retry and cancellation rules as ``execute``.
        """
        body = b"" if content is None else bytes(content)
        if len(body) > INLINE_BODY_BYTES:
            response = await self.execute(Request(method, url, as_headers(headers), body))
            return await _read_full(response)
        host, port, target = split_url(url)
        data = encode_head(method, target, headers, self.host_line(host, port), len(body))
        if body:
            data += body
        head = await self.exchange((host, port), data, method)
        assert head.body is not None
        return FullResponse(
            head.status, head.headers, decode_body(head.headers, head.body), NO_TRAILERS
        )

    async def exchange(self, address: tuple[str, int], data: bytes, method: str = "POST") -> Head:
        """Send a whole request (head and in-memory body, in ``data``) to ``address``
        (``host, port``) and return its whole answer, body not decoded.

        The bytes-level `fetch`, for callers that build request heads once per method
        (`head_prefix`): same pooling and retry rule. Keep ``data`` within
        ``INLINE_BODY_BYTES`` of body: it is written before the answer is read.
        """
        return await self._retrying(
            address, True, lambda conn: self._fetch_whole(conn, address, data, method)
        )

    async def _fetch_whole(
        self, conn: Connection, address: tuple[str, int], data: bytes, method: str
    ) -> Head:
        head = await self._fetch_on(conn, data, method)
        self._release(conn, address, head.keep_alive)
        return head

    async def _retrying(
        self,
        address: tuple[str, int],
        replayable: bool,
        attempt: Callable[[Connection], Awaitable[_T]],
    ) -> _T:
        """``attempt(conn)`` on a pooled connection, or a new one. When the server had
        closed the pooled one before reading the request (`StaleConnection`), nothing was
        processed: once more on a new connection, if the body can be sent again."""
        if self._pool.closed:
            raise ConnectionError("the HTTP/1.1 transport is closed; create a new client")
        conn = self._pool.take(address) or await self._dial(*address)
        try:
            return await attempt(conn)
        except StaleConnection:
            if not replayable:
                raise ConnectionResetError(
                    "the pooled connection was closed by the server"
                ) from None
        conn = await self._dial(*address)
        try:
            return await attempt(conn)
        except StaleConnection as exc:
            raise ConnectionResetError("the server closed the connection before answering") from exc

    def host_line(self, host: str, port: int) -> str:
        """The ``host:`` line of a request to ``host:port`` (the URL's host on a Unix socket)."""
        return host_line(host, port, self._unix_path is not None)

    async def _fetch_on(self, conn: Connection, data: bytes, method: str) -> Head:
        try:
            return await conn.fetch(data, method)
        except RETRYABLE as exc:
            conn.close()
            if conn.reused:
                raise StaleConnection from exc
            raise ReadError(f"connection lost before the response: {exc!r}") from exc
        except BaseException:
            conn.close()  # cancelled, timed out or failed: never pooled again
            raise

    async def execute(self, request: Request) -> Response:
        """Send ``request`` and return its response; the body may still be streaming."""
        host, port, target = split_url(request.url)
        content = request.content
        replayable = content is None or isinstance(content, bytes | bytearray)
        return await self._retrying(
            (host, port),
            replayable,
            lambda conn: self._exchange(conn, host, port, target, request, content),
        )

    async def _exchange(
        self,
        conn: Connection,
        host: str,
        port: int,
        target: str,
        request: Request,
        content: bytes | bytearray | AsyncIterator[bytes] | None,
    ) -> Response:
        try:
            if content is None or (
                isinstance(content, bytes | bytearray) and len(content) <= INLINE_BODY_BYTES
            ):
                await self._send_request(conn, host, port, target, request, content)
                head = await self._read_head(conn, request.method)
            else:
                head = await self._send_while_reading(conn, host, port, target, request, content)
        except RETRYABLE as exc:
            conn.close()
            if conn.reused:
                raise StaleConnection from exc
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
        body_stream = self._stream_body(
            conn, key, chunked=head.chunked, keep_alive=head.keep_alive and head.chunked
        )
        encoding = headers.get("content-encoding", "identity")
        if encoding not in DECODED_ENCODINGS:
            return _response(head.status, headers, body_stream)
        return _response(head.status, headers, decode_stream(encoding, body_stream))

    async def _send_while_reading(
        self,
        conn: Connection,
        host: str,
        port: int,
        target: str,
        request: Request,
        content: bytes | bytearray | AsyncIterator[bytes],
    ) -> Head:
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
        conn: Connection,
        host: str,
        port: int,
        target: str,
        request: Request,
        content: bytes | bytearray | AsyncIterator[bytes] | None,
    ) -> None:
        where = self.host_line(host, port)
        if content is None or isinstance(content, bytes | bytearray):
            body = bytes(content or b"")
            head = encode_head(request.method, target, request.headers, where, len(body))
            if len(body) <= INLINE_BODY_BYTES:
                conn.write(head + body)
                await conn.drain()
                return
            conn.write(head)
            await conn.drain()
            await send_beside_transport(conn, body)
            return
        conn.write(encode_head(request.method, target, request.headers, where, None))
        async for chunk in content:
            if chunk:
                conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await conn.drain()
        conn.write(b"0\r\n\r\n")
        await conn.drain()

    async def _read_head(self, conn: Connection, method: str) -> Head:
        """Read the status line and headers, and a content-length body right away."""
        while True:
            head = parse_head(await conn.readuntil(b"\r\n\r\n"), method)
            if head is None:  # interim 1xx: the real head follows
                continue
            if head.body is None and not head.chunked and head.length is not None:
                try:
                    head.body = await conn.readexactly(head.length)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    # Not retryable: the server has answered.
                    raise ReadError(f"connection lost while reading the response: {exc!r}") from exc
            return head

    async def _stream_body(
        self, conn: Connection, key: tuple[str, int], *, chunked: bool, keep_alive: bool
    ) -> AsyncGenerator[bytes]:
        done = False
        try:
            if chunked:
                while True:
                    size = chunk_size(await conn.readuntil(b"\r\n"))
                    if size == 0:
                        # Trailer section (ignored) ends with an empty line.
                        while (await conn.readuntil(b"\r\n")) != b"\r\n":
                            pass
                        break
                    data = await conn.readexactly(size + 2)
                    yield data[:-2]
            else:
                # No framing: the body runs until the server closes the connection.
                while chunk := await conn.read_some():
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

    async def _dial(self, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        read_timeout = self._read_timeout
        try:
            if self._unix_path is not None:
                opening: Any = loop.create_unix_connection(
                    lambda: Connection(loop, read_timeout), self._unix_path
                )
            else:
                opening = loop.create_connection(lambda: Connection(loop, read_timeout), host, port)
            # Not asyncio.wait_for: on Python 3.11 it drops a cancellation that lands as the
            # connection opens, and the cancelled call would go on (a stream, for ever).
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await opening
        except TimeoutError as exc:
            raise ConnectionError(f"connecting to {self._where(host, port)} timed out") from exc
        except OSError as exc:
            raise ConnectionError(
                f"cannot connect to {self._where(host, port)}: {exc.strerror or exc}; "
                "is the plugin running?"
            ) from exc
        assert isinstance(conn, Connection)
        return conn

    def _where(self, host: str, port: int) -> str:
        return f"unix:{self._unix_path}" if self._unix_path is not None else f"{host}:{port}"

    def _release(self, conn: Connection, key: tuple[str, int], keep_alive: bool) -> None:
        self._pool.put(key, conn, keep_alive and conn.usable)


async def _read_full(response: Response) -> FullResponse:
    buf = bytearray()
    async for chunk in response.content:
        buf += chunk
    return FullResponse(response.status, response.headers, bytes(buf), NO_TRAILERS)


def _response(status: int, headers: Headers, content: bytes | AsyncIterator[bytes]) -> Response:
    return Response(status=status, http_version=HTTPVersion.HTTP1, headers=headers, content=content)
