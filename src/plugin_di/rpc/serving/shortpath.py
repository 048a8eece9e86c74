"""The short path: small, complete HTTP/1.1 requests answered without an ASGI cycle.

An ASGI cycle costs a scope dict, a task, ``receive`` and ``send`` awaitables and two socket
writes per request: for a Connect unary call that is about as much as the call itself. A
server given `ShortPaths` asks them about every HTTP/1.1 POST once its head is parsed. When
they take it, the body is collected and the handler answers through an `Exchange`: a complete
`Answer` in one ``write``, or a response relayed as bytes. Everything else (streams, other
content types, chunked bodies, HTTP/2) goes through the ASGI app unchanged.

This is a seam: a `ShortPaths` returns None for what it does not take, and the server never
needs to know what the short path does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

__all__ = ["AnyOf", "Answer", "Exchange", "Headers", "ShortPathHandler", "ShortPaths"]

log = logging.getLogger("plugin_di.rpc.serving")

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete HTTP response: status, headers (without content-length) and body."""

    status: int
    headers: Headers
    body: bytes


ShortPathHandler = Callable[["Exchange"], None]
"""Starts answering one complete request; it answers through the `Exchange`, now or later."""


class ShortPaths(Protocol):
    """Decides, from a request's head, whether a short-path handler answers it."""

    def match(self, method: bytes, path: bytes, headers: Headers) -> ShortPathHandler | None:
        """The handler for this request, or None to serve it through ASGI.

        Return a handler only when the body is small enough to collect in memory: a
        ``content-length`` within the handler's limit. Must not raise.
        """
        ...


class ExchangeSide(Protocol):
    """What an `Exchange` needs from its HTTP/1.1 connection."""

    transport: asyncio.WriteTransport
    loop: asyncio.AbstractEventLoop
    write_paused: bool

    @property
    def stopping(self) -> bool: ...

    def response_done(self, request: Any, keep_alive: bool) -> None: ...

    def request_lost(self, request: Any) -> None: ...


_JSON = ((b"content-type", b"application/json"),)
_INTERNAL = Answer(500, _JSON, b'{"code":"internal","message":"internal error"}')
_CANCELED = Answer(499, _JSON, b'{"code":"canceled","message":"the server is stopping"}')


def status_line(status: int) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` for a status code."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode()
    return line


_STATUS_LINES: dict[int, bytes] = {}


def serialize(answer: Answer, keep_alive: bool) -> bytes:
    """An `Answer` as HTTP/1.1 bytes, with its content-length."""
    status, headers, body = answer.status, answer.headers, answer.body
    if type(headers) is tuple:  # shared header tuples (a unary success): their head is cached
        key = (status, headers)
        head = _HEADS.get(key)
        if head is None:
            head = _head(status, headers)
            if len(_HEADS) < _MAX_CACHED_HEADS:
                _HEADS[key] = head
    else:
        head = _head(status, headers)
    close = b"" if keep_alive else b"connection: close\r\n"
    return b"%s%scontent-length: %d\r\n\r\n%s" % (head, close, len(body), body)


def _head(status: int, headers: Headers) -> bytes:
    parts = [status_line(status)]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    return b"".join(parts)


_HEADS: dict[tuple[int, Headers], bytes] = {}
_MAX_CACHED_HEADS = 64


class Exchange:
    """One request on the short path: its head and body, and how its answer goes out."""

    __slots__ = (
        "_chunks",
        "_flow",
        "_on_disconnect",
        "_side",
        "_task",
        "body_complete",
        "disconnected",
        "handler",
        "headers",
        "keep_alive",
        "response_complete",
    )

    def __init__(
        self, side: ExchangeSide, handler: ShortPathHandler, headers: Headers, keep_alive: bool
    ) -> None:
        self._side = side
        self.handler = handler
        self.headers = headers
        """The request's headers, names lower-cased."""
        self.keep_alive = keep_alive
        self._chunks: list[bytes] = []
        self._on_disconnect: Callable[[], None] | None = None
        self._flow: Callable[[bool], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.body_complete = False
        self.response_complete = False
        self.disconnected = False

    # -- the connection's side -----------------------------------------------------------
    def feed(self, body: bytes) -> None:
        self._chunks.append(body)

    def complete(self) -> None:
        """The whole body arrived: hand the request to its handler."""
        self.body_complete = True
        self.handler(self)

    def lost(self) -> None:
        """The caller went away before the response was complete."""
        self.disconnected = True
        if self._task is not None:
            self._task.cancel()  # nobody is left to read the answer
        callback = self._on_disconnect
        if callback is not None:
            self._on_disconnect = None
            callback()

    def flow(self, writable: bool) -> None:
        if self._flow is not None:
            self._flow(writable)

    def cancel(self) -> None:
        """The server's grace period is over: cut the call."""
        if self._task is not None:
            self._task.cancel()
        elif not self.response_complete:
            self.abort()

    # -- the handler's side --------------------------------------------------------------
    @property
    def body(self) -> bytes:
        """The whole request body."""
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def respond(self, answer: Answer) -> None:
        """Write a complete response and finish."""
        if self.response_complete:
            return
        side = self._side
        if side.stopping:
            self.keep_alive = False
        if not self.disconnected:
            side.transport.write(serialize(answer, self.keep_alive))
        self.finish()

    def write(self, data: bytes) -> None:
        """Write response bytes as they are (a relayed response)."""
        if not self.disconnected:
            self._side.transport.write(data)

    def finish(self, keep_alive: bool = True) -> None:
        """The response was written whole; ``keep_alive=False`` closes the connection."""
        if self.response_complete:
            return
        self.response_complete = True
        if not self.disconnected:
            self._side.response_done(self, keep_alive and self.keep_alive)

    def abort(self) -> None:
        """Drop the connection: the response cannot be completed."""
        if self.response_complete and self.disconnected:
            return
        self.response_complete = True
        self._side.request_lost(self)
        if not self.disconnected:
            self._side.transport.close()

    def on_disconnect(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` if the caller goes away before the response is complete."""
        self._on_disconnect = callback

    def on_flow(self, callback: Callable[[bool], None] | None) -> None:
        """Call ``callback(False)`` when the caller's socket buffer is full and
        ``callback(True)`` when it drained (a relay stops and resumes reading its source)."""
        self._flow = callback
        if callback is not None and self._side.write_paused:
            callback(False)

    def answer_with(self, answer: Awaitable[Answer]) -> None:
        """Respond with what ``answer`` returns, run as a task (`run`)."""
        self._task = self._side.loop.create_task(self._answer(answer))

    def run(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task that the caller's disconnect and the end of a graceful
        stop's grace period cancel."""
        self._task = self._side.loop.create_task(work)

    async def _answer(self, pending: Awaitable[Answer]) -> None:
        try:
            answer = await pending
        except asyncio.CancelledError:
            if not self.disconnected:  # cut by the server's stop: tell the caller why
                self.keep_alive = False
                self.respond(_CANCELED)
            raise
        except Exception:
            log.exception("unhandled error answering a request on the short path")
            answer = _INTERNAL
        self.respond(answer)


class AnyOf:
    """The first of several `ShortPaths` that takes a request."""

    def __init__(self, *short_paths: ShortPaths) -> None:
        self._all = short_paths

    def match(self, method: bytes, path: bytes, headers: Headers) -> ShortPathHandler | None:
        """The handler of the first that takes the request, else None."""
        for short_paths in self._all:
            handler = short_paths.match(method, path, headers)
            if handler is not None:
                return handler
        return None
