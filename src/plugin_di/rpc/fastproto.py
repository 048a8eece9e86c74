"""uvicorn's httptools protocol with a short path for small, complete requests.

uvicorn runs every request as an ASGI cycle: a scope dict, a task, ``receive`` and ``send``
awaitables and two socket writes for the answer. For a Connect unary call on the fast
channel that machinery costs about as much as the call itself. `ShortPathProtocol` asks its
`ShortPaths` about every request once its head is parsed. When they take it, the body is
collected and the handler answers through an `Exchange`: a complete `Answer` in one
``write``, or a response relayed as bytes; uvicorn never sees the request. Everything else
(streams, other content types, chunked bodies, probes) goes through uvicorn's ASGI cycle
unchanged.

Only the per-request hooks are overridden. Keep-alive, its timeout, pipelining, graceful
shutdown and flow control stay uvicorn's: a short-path request stands in uvicorn's
``cycle`` slot with the attributes uvicorn reads from it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = [
    "AnyOf",
    "Answer",
    "Exchange",
    "ShortPathHandler",
    "ShortPathProtocol",
    "ShortPaths",
    "protocol_class",
]

log = logging.getLogger(__name__)

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


class _Event:
    """Stands in for uvicorn's per-cycle ``asyncio.Event``: nothing waits on a short path."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NO_EVENT = _Event()
_JSON = ((b"content-type", b"application/json"),)
_INTERNAL = Answer(500, _JSON, b'{"code":"internal","message":"internal error"}')
_CANCELED = Answer(499, _JSON, b'{"code":"canceled","message":"the server is stopping"}')


class Exchange:
    """One request on the short path: its head and body, and how its answer goes out.

    It stands in uvicorn's ``cycle`` slot, with the attributes uvicorn reads from a cycle
    (``response_complete``, ``keep_alive``, ``disconnected``, ``message_event``).
    """

    __slots__ = (
        "_chunks",
        "_flow",
        "_on_disconnect",
        "_protocol",
        "_task",
        "disconnected",
        "handler",
        "headers",
        "keep_alive",
        "response_complete",
    )

    message_event = _NO_EVENT

    def __init__(
        self,
        protocol: ShortPathProtocol,
        handler: ShortPathHandler,
        headers: Headers,
        keep_alive: bool,
    ) -> None:
        self._protocol = protocol
        self.handler = handler
        self.headers = headers
        """The request's headers, names lower-cased."""
        self.keep_alive = keep_alive
        self._chunks: list[bytes] = []
        self._on_disconnect: Callable[[], None] | None = None
        self._flow: Callable[[bool], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.response_complete = False
        self.disconnected = False

    @property
    def body(self) -> bytes:
        """The whole request body."""
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def respond(self, answer: Answer) -> None:
        """Write a complete response and finish."""
        if not self.response_complete:
            self.write(_serialize(answer, self.keep_alive))
            self.finish()

    def write(self, data: bytes) -> None:
        """Write response bytes as they are (a relayed response)."""
        if not self.disconnected:
            self._protocol.transport.write(data)

    def finish(self, keep_alive: bool = True) -> None:
        """The response was written whole; ``keep_alive=False`` closes the connection."""
        if self.response_complete:
            return
        self.response_complete = True
        if self.disconnected:
            return
        if not (keep_alive and self.keep_alive):
            self._protocol.transport.close()
        self._protocol.on_response_complete()

    def abort(self) -> None:
        """Drop the connection: the response cannot be completed."""
        self.response_complete = True
        if not self.disconnected:
            self._protocol.transport.close()

    def on_disconnect(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` if the caller goes away before the response is complete."""
        self._on_disconnect = callback

    def on_flow(self, callback: Callable[[bool], None] | None) -> None:
        """Call ``callback(False)`` when the caller's socket buffer is full and
        ``callback(True)`` when it drained (a relay stops and resumes reading its source)."""
        self._flow = callback
        if callback is not None and self._protocol.flow.write_paused:
            callback(False)

    def answer_with(self, answer: Awaitable[Answer]) -> None:
        """Respond with what ``answer`` returns, run as a task (`run`)."""
        self.run(self._answer(answer))

    def run(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task that the caller's disconnect cancels and the server's
        graceful shutdown waits for."""
        protocol = self._protocol
        self._task = task = protocol.loop.create_task(work)
        protocol.tasks.add(task)
        task.add_done_callback(protocol.tasks.discard)

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

    def _lost(self) -> None:
        self.disconnected = True
        if self._task is not None:
            self._task.cancel()  # nobody is left to read the answer
        callback = self._on_disconnect
        if callback is not None:
            self._on_disconnect = None
            callback()


class ShortPathProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that lets `ShortPaths` answer requests without ASGI."""

    short_paths: ShortPaths  # set on the subclass `protocol_class` makes

    def on_headers_complete(self) -> None:
        parser = self.parser
        url = self.url
        if (
            parser.get_method() == b"POST"
            # A query string or an absolute URL is left to ASGI: short paths see paths.
            and url.startswith(b"/")
            and b"?" not in url
            and (self.cycle is None or self.cycle.response_complete)
            and parser.get_http_version() == "1.1"
            # uvicorn answers "100 Continue" when the app reads the body; left to it.
            and not self.expect_100_continue
            and not parser.should_upgrade()
        ):
            handler = self.short_paths.match(b"POST", url, self.headers)
            if handler is not None:
                exchange = Exchange(self, handler, self.headers, parser.should_keep_alive())
                self.cycle = exchange  # type: ignore[assignment]
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        cycle: Any = self.cycle
        if type(cycle) is Exchange:
            cycle._chunks.append(body)
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        cycle: Any = self.cycle
        if type(cycle) is Exchange:
            cycle.handler(cycle)
            return
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        cycle: Any = self.cycle
        if type(cycle) is Exchange and not cycle.response_complete:
            cycle._lost()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        self._tell_flow(writable=False)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._tell_flow(writable=True)

    def _tell_flow(self, *, writable: bool) -> None:
        cycle: Any = self.cycle
        if type(cycle) is Exchange and cycle._flow is not None:
            cycle._flow(writable)


def _serialize(answer: Answer, keep_alive: bool) -> bytes:
    parts = [STATUS_LINE[answer.status]]
    for name, value in answer.headers:
        parts += (name, b": ", value, b"\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts += (b"content-length: ", str(len(answer.body)).encode(), b"\r\n\r\n", answer.body)
    return b"".join(parts)


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


def protocol_class(short_paths: ShortPaths) -> type[asyncio.Protocol]:
    """A `ShortPathProtocol` subclass bound to ``short_paths``, for ``uvicorn.Config(http=...)``."""
    attrs: dict[str, Any] = {"short_paths": short_paths}
    return type("BoundShortPathProtocol", (ShortPathProtocol,), attrs)
