"""HTTP/1.1 connections (httptools), and the switch to HTTP/2 when a client speaks it.

Every connection starts here. A TLS connection that negotiated ``h2`` by ALPN, or a cleartext
one whose first bytes are the HTTP/2 preface (prior knowledge, as connect-go's h2c handler
accepts), becomes an `H2Connection`. Otherwise requests are parsed with httptools and
answered one at a time, in order: by a short-path handler (`shortpath`) when one takes the
request, else by an ASGI cycle (`H1Cycle`). Pipelined requests wait their turn with reading
paused.

Deadlines: a request head must be complete within ``header_timeout``; between requests, and
while a request body trickles in, ``idle_timeout`` of silence closes the connection. While the
app works on a request there is none.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import httptools

from plugin_di.rpc.serving._h1_cycle import H1Cycle
from plugin_di.rpc.serving._hub import Hub, base_scope, control_byte_in, unquote_path
from plugin_di.rpc.serving.shortpath import Answer, Exchange, serialize

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
        self._reading: H1Cycle | Exchange | None = None
        self._answering: H1Cycle | Exchange | None = None
        self._pipeline: deque[H1Cycle | Exchange] = deque()
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
        request: H1Cycle | Exchange | None = None
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
            scope["path"] = unquote_path(raw_path)
            scope["query_string"] = query
            scope["headers"] = self._headers
            request = H1Cycle(self, scope, keep_alive, self._expect_continue)
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
            if isinstance(request, H1Cycle) and request.buffered > _READ_HIGH_WATER:
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
    def _start(self, request: H1Cycle | Exchange) -> None:
        self._answering = request
        self.hub.begin(request)
        if isinstance(request, H1Cycle):
            request.task = self.loop.create_task(request.run())

    def response_done(self, request: H1Cycle | Exchange, keep_alive: bool) -> None:
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
                if isinstance(following, H1Cycle):
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

    def request_lost(self, request: H1Cycle | Exchange) -> None:
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

    def body_read(self, request: H1Cycle) -> None:
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
