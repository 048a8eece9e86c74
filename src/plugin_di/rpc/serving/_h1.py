"""HTTP/1.1 connections (httptools), and the switch to HTTP/2 when a client speaks it.

Every connection starts here. A TLS connection that negotiated ``h2`` by ALPN, or a cleartext
one whose first bytes are the HTTP/2 preface (prior knowledge, as connect-go's h2c handler
accepts), becomes an `H2Connection`. Otherwise requests are parsed with httptools and
answered one at a time, in order: by a short-path handler (`shortpath`) when one takes the
request, else by an ASGI cycle (`_Cycle`). Pipelined requests wait their turn with reading
paused.

Deadlines: a request head must be complete within ``header_timeout``; between requests, and
while a request body trickles in, ``idle_timeout`` of silence closes the connection. While the
app works on a request there is none.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import MutableMapping
from typing import Any

import httptools

from plugin_di.rpc.serving._hub import Hub, base_scope, control_byte_in
from plugin_di.rpc.serving.shortpath import Answer, Exchange, serialize, status_line

__all__ = ["H1Connection"]

log = logging.getLogger("plugin_di.rpc.serving")

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_READ_HIGH_WATER = 64 * 1024
# Past this much of an unread request body (answered early, e.g. refused as too large), the
# connection closes instead of reading on to reach the next request.
_DISCARD_LIMIT = 1024 * 1024
_TEXT = ((b"content-type", b"text/plain; charset=utf-8"),)
_BAD_REQUEST = Answer(400, _TEXT, b"malformed HTTP request")
_TOO_LARGE = Answer(431, _TEXT, b"request head too large")
_NO_UPGRADE = Answer(400, _TEXT, b"protocol upgrades are not supported; use HTTP/2 prior knowledge")
_JSON = (b"content-type", b"application/json")
_INTERNAL_BODY = b'{"code":"internal","message":"internal error"}'
_CANCELED_BODY = b'{"code":"canceled","message":"the server is stopping"}'
_NO_BODY_STATUS = frozenset({204, 304})


class _ControlByte(Exception):
    """A header value with a control character: the request is malformed."""


class _HeadTooLarge(Exception):
    pass


class H1Connection(asyncio.Protocol):
    """One client connection speaking HTTP/1.1 (until it turns out to speak HTTP/2)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.loop: Any = None
        self.deadline: float | None = None
        self.write_paused = False
        self._drainers: list[asyncio.Future[None]] = []
        self._reading_paused = False
        self._sniffing = False
        self._sniffed = b""
        self._scope: dict[str, Any] | None = None
        """What every ASGI scope of the connection shares: built at its first ASGI request
        (a connection the short path answers whole never needs it)."""
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._expect_continue = False
        self._in_message = False
        self._discarded = 0
        self._reading: _Cycle | Exchange | None = None
        self._answering: _Cycle | Exchange | None = None
        self._pipeline: deque[_Cycle | Exchange] = deque()
        self._closed = False
        limits = hub.limits
        self._max_head_bytes = limits.max_header_bytes
        self._header_timeout = limits.header_timeout
        self._idle_timeout = limits.idle_timeout
        self._now = hub.clock.now
        self._received_at = 0.0
        """When the bytes being parsed arrived: the parser's callbacks all run within one
        `data_received`, so they share one clock reading."""

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()  # once: in 3.11 each lookup costs a getpid()
        hub = self.hub
        if not hub.admit(self):
            transport.abort()  # type: ignore[attr-defined]
            self._closed = True
            return
        limits = hub.limits
        transport.set_write_buffer_limits(high=limits.write_buffer_bytes)  # type: ignore[attr-defined]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._become_h2(b"")
            return
        self._sniffing = ssl_object is None
        self.deadline = hub.clock.now() + limits.header_timeout

    def data_received(self, data: bytes) -> None:
        if self._sniffing:
            data = self._sniffed + data
            if data[:3] == b"PRI" or (len(data) < 3 and _PREFACE.startswith(data)):
                if len(data) < len(_PREFACE) and _PREFACE.startswith(data):
                    self._sniffed = data  # wait for the rest of the preface
                    return
                if data.startswith(_PREFACE):
                    self._become_h2(data)
                    return
            self._sniffing = False
            self._sniffed = b""
        self._received_at = self._now()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(_NO_UPGRADE)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadTooLarge):
                self._refuse(_TOO_LARGE)
            elif isinstance(error.__context__, _ControlByte):
                self._refuse(_BAD_REQUEST)
            else:
                log.exception("error handling an HTTP/1.1 request")
                self._refuse(_BAD_REQUEST)
        except httptools.HttpParserError:
            self._refuse(_BAD_REQUEST)

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; connection_lost cleans up

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.deadline = None
        self.hub.release(self)
        pending = [r for r in (self._answering, self._reading, *self._pipeline) if r is not None]
        self._answering = self._reading = None
        self._pipeline.clear()
        for request in dict.fromkeys(pending):
            if not request.response_complete:
                request.lost()
                self.hub.end(request)
        self._wake_drainers()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self._answering is not None:
            self._answering.flow(False)

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drainers()
        if self._answering is not None:
            self._answering.flow(True)

    @property
    def stopping(self) -> bool:
        """Whether the server is stopping (answers then say ``connection: close``)."""
        return self.hub.stopping

    # -- the hub's side ------------------------------------------------------------------
    def expire(self) -> None:
        """Too slow a head, or idle too long: close."""
        self.abort()

    def shutdown(self) -> None:
        """Close now if idle; else after the requests already read are answered."""
        if self._answering is None and not self._in_message and not self._pipeline:
            self.transport.close()

    def abort(self) -> None:
        if not self._closed:
            self.transport.abort()

    # -- httptools callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._expect_continue = False
        self._discarded = 0
        if self._answering is None:
            self.deadline = self._received_at + self._header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._max_head_bytes:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        # counted here rather than in a helper: this runs for every header of every request
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._max_head_bytes:
            raise _HeadTooLarge
        if control_byte_in(value):
            raise _ControlByte
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        if parser.should_upgrade():
            return  # refused once the parser raises HttpParserUpgrade
        hub = self.hub
        method = parser.get_method()
        keep_alive = parser.should_keep_alive() and not hub.stopping
        url = self._url
        if url[:1] == b"/" and b"?" not in url:
            raw_path, query = url, b""
        else:
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path or b"/", parsed.query or b""
        request: _Cycle | Exchange | None = None
        short_paths = hub.short_paths
        if (
            short_paths is not None
            and self._answering is None
            and method == b"POST"
            and not query
            and not self._expect_continue
        ):
            handler = short_paths.match(method, raw_path, self._headers)
            if handler is not None:
                request = Exchange(self, handler, self._headers, keep_alive)
        if request is None:
            if self._scope is None:
                self._scope = base_scope(self.transport, hub.scheme, "1.1")
            scope = dict(self._scope)
            scope["method"] = method.decode("latin-1")
            scope["http_version"] = parser.get_http_version()
            scope["raw_path"] = raw_path
            scope["path"] = _unquote(raw_path)
            scope["query_string"] = query
            scope["headers"] = self._headers
            request = _Cycle(self, scope, keep_alive, self._expect_continue)
        self._reading = request
        self.deadline = self._received_at + self._idle_timeout
        if self._answering is None:
            self._start(request)
        else:
            self._pipeline.append(request)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        request = self._reading
        if request is not None:
            if request.response_complete:  # answered without reading it all: discard the rest
                self._discarded += len(body)
                if self._discarded > _DISCARD_LIMIT:
                    self.transport.close()
                return
            request.feed(body)
            if request is self._answering:
                self.deadline = self._received_at + self._idle_timeout
            if isinstance(request, _Cycle) and request.buffered > _READ_HIGH_WATER:
                self._pause_reading()

    def on_message_complete(self) -> None:
        self._in_message = False
        request = self._reading
        self._reading = None
        if request is not None:
            if request is self._answering or self._answering is None:
                self.deadline = None
            request.complete()

    # -- requests ------------------------------------------------------------------------
    def _start(self, request: _Cycle | Exchange) -> None:
        self._answering = request
        self.hub.begin(request)
        if isinstance(request, _Cycle):
            request.task = self.loop.create_task(request.run())

    def response_done(self, request: _Cycle | Exchange, keep_alive: bool) -> None:
        """``request``'s response was written whole; go on with the next, or close."""
        self.hub.end(request)
        if request is not self._answering:
            return
        self._answering = None
        if self._closed:
            return
        if not keep_alive:
            self.transport.close()
            return
        if self._pipeline:
            following = self._pipeline.popleft()
            self._start(following)
            if following.body_complete:
                self.deadline = None
                if isinstance(following, _Cycle):
                    following.wake()
            if not self._pipeline:
                self._resume_reading()
            return
        if self.hub.stopping and not self._in_message:
            self.transport.close()
            return
        self._resume_reading()
        timeout = self._header_timeout if self._in_message else self._idle_timeout
        self.deadline = self._now() + timeout

    def request_lost(self, request: _Cycle | Exchange) -> None:
        """``request`` cannot be answered whole: the connection is dropped."""
        self.hub.end(request)

    def write_continue(self) -> None:
        if not self._closed:
            self.transport.write(_CONTINUE)

    async def drain(self) -> None:
        """Wait until the client reads what is buffered (backpressure on slow readers); a
        client that reads nothing for ``idle_timeout`` is cut."""
        if self.write_paused and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drainers.append(waiter)
            self.deadline = self.hub.clock.now() + self.hub.limits.idle_timeout
            try:
                await waiter
            finally:
                if self._answering is not None:
                    self.deadline = None

    def _wake_drainers(self) -> None:
        drainers, self._drainers = self._drainers, []
        for waiter in drainers:
            if not waiter.done():
                waiter.set_result(None)

    def body_read(self, request: _Cycle) -> None:
        """The app took what was buffered of ``request``'s body: read on."""
        if request is self._answering:
            self._resume_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self._closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and not self._closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def _refuse(self, answer: Answer) -> None:
        """Answer a request the server cannot take, and close."""
        if self._closed:
            return
        if self._answering is None:
            self.transport.write(serialize(answer, keep_alive=False))
        self.transport.close()

    def _become_h2(self, initial: bytes) -> None:
        from plugin_di.rpc.serving._h2 import H2Connection

        hub = self.hub
        hub.release(self)
        self._closed = True
        h2 = H2Connection(hub)
        self.transport.set_protocol(h2)
        h2.connection_made(self.transport)
        if initial:
            h2.data_received(initial)


def _unquote(raw_path: bytes) -> str:
    if b"%" not in raw_path:
        return raw_path.decode("latin-1")
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(raw_path).decode("utf-8", "replace")


class _Cycle:
    """One request answered by the ASGI app over HTTP/1.1."""

    __slots__ = (
        "_chunked",
        "_chunks",
        "_conn",
        "_expect_continue",
        "_head_written",
        "_headers",
        "_is_head",
        "_status",
        "_waiter",
        "body_complete",
        "body_delivered",
        "buffered",
        "disconnected",
        "keep_alive",
        "response_complete",
        "response_started",
        "scope",
        "task",
    )

    def __init__(
        self, conn: H1Connection, scope: dict[str, Any], keep_alive: bool, expect_continue: bool
    ) -> None:
        self._conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self._expect_continue = expect_continue
        self._is_head = scope["method"] == "HEAD"
        self._chunks: list[bytes] = []
        self.buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._status = 200
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunked = False
        self._head_written = False
        self.body_complete = False
        self.body_delivered = False
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.task: asyncio.Task[None] | None = None

    # -- the connection's side -----------------------------------------------------------
    def feed(self, body: bytes) -> None:
        self._chunks.append(body)
        self.buffered += len(body)
        self.wake()

    def complete(self) -> None:
        self.body_complete = True
        self.wake()

    def lost(self) -> None:
        self.disconnected = True
        self.wake()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def flow(self, writable: bool) -> None:
        pass  # send() waits on the connection's drain instead

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- ASGI ----------------------------------------------------------------------------
    async def run(self) -> None:
        conn = self._conn
        try:
            await conn.hub.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not (self.disconnected or self.response_complete):
                self.keep_alive = False
                self._fail(499, _CANCELED_BODY)  # the stop's grace period ran out
        except Exception:
            log.exception("unhandled error serving %s", self.scope.get("path"))
            self._fail(500, _INTERNAL_BODY)
        else:
            if not (self.disconnected or self.response_complete):
                log.error("the app returned without a complete response to %s", self.scope["path"])
                self._fail(500, _INTERNAL_BODY)

    def _fail(self, status: int, body: bytes) -> None:
        if self.response_complete or self.disconnected:
            return
        if self._head_written:  # half a response is out: only dropping the connection tells
            self.response_complete = True
            self._conn.request_lost(self)
            self._conn.abort()
            return
        self.keep_alive = False
        self._status, self._headers = status, [_JSON]
        self._write(body, more=False)

    async def receive(self) -> dict[str, Any]:
        if self._expect_continue:
            self._expect_continue = False
            self._conn.write_continue()
        while True:
            if self.disconnected or self.response_complete:
                return {"type": "http.disconnect"}
            if self._chunks or (self.body_complete and not self.body_delivered):
                chunks = self._chunks
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._chunks = []
                self.buffered = 0
                self._conn.body_read(self)
                more = not self.body_complete
                self.body_delivered = not more
                return {"type": "http.request", "body": body, "more_body": more}
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.response_started:
                raise RuntimeError("ASGI: http.response.body before http.response.start")
            if self.response_complete or self.disconnected:
                return
            self._write(bytes(message.get("body", b"")), more=bool(message.get("more_body")))
            if self._conn.write_paused:
                await self._conn.drain()
        elif kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self.response_started = True
            self._status = int(message["status"])
            self._headers = list(message.get("headers", ()))
        elif kind != "http.response.trailers":  # HTTP/1.1 carries no trailers here
            raise RuntimeError(f"ASGI: unexpected message {kind!r} on an HTTP/1.1 request")

    def _write(self, body: bytes, *, more: bool) -> None:
        conn = self._conn
        if not self._head_written:
            self._head_written = True
            out = [status_line(self._status)]
            length_known = False
            for name, value in self._headers:
                lowered = name.lower()
                if lowered == b"content-length":
                    length_known = True
                elif lowered in (b"connection", b"transfer-encoding"):
                    continue
                out += (name, b": ", value, b"\r\n")
            bodiless = self._status in _NO_BODY_STATUS or self._status < 200
            if not length_known and not bodiless:
                if more:
                    self._chunked = True
                    out.append(b"transfer-encoding: chunked\r\n")
                else:
                    out += (b"content-length: ", str(len(body)).encode(), b"\r\n")
            if not self.keep_alive or conn.hub.stopping:
                self.keep_alive = False
                out.append(b"connection: close\r\n")
            out.append(b"\r\n")
            if body and not self._is_head:
                out += self._frame(body)
            if not more:
                out.append(b"0\r\n\r\n" if self._chunked and not self._is_head else b"")
            conn.transport.write(b"".join(out))
        elif not self._is_head:
            parts = self._frame(body) if body else []
            if not more and self._chunked:
                parts.append(b"0\r\n\r\n")
            if parts:
                conn.transport.write(b"".join(parts))
        if not more:
            self.response_complete = True
            self.wake()
            conn.response_done(self, self.keep_alive)

    def _frame(self, body: bytes) -> list[bytes]:
        if self._chunked:
            return [b"%x\r\n" % len(body), body, b"\r\n"]
        return [body]
