"""uvicorn's httptools protocol with a short path for small, complete requests.

uvicorn runs every request as an ASGI cycle: a scope dict, a task, ``receive`` and ``send``
awaitables and two socket writes for the answer. For a Connect unary call on the fast
channel that machinery costs about as much as the call itself. `ShortPathProtocol` asks its
`ShortPaths` about every request once its head is parsed. When they take it, the body is
collected, the handler's answer is written in one ``write``, and uvicorn never sees the
request. Everything else (streams, other content types, chunked bodies, probes) goes
through uvicorn's ASGI cycle unchanged.

Only the per-request hooks are overridden. Keep-alive, its timeout, pipelining, graceful
shutdown and flow control stay uvicorn's: a short-path request stands in uvicorn's
``cycle`` slot with the attributes uvicorn reads from it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = [
    "AnyOf",
    "Answer",
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


ShortPathHandler = Callable[[Headers, bytes], Awaitable[Answer]]
"""Answers one request from its (lower-cased) headers and its whole body."""


class ShortPaths(Protocol):
    """Decides, from a request's head, whether a short-path handler answers it."""

    def match(self, method: bytes, path: bytes, headers: Headers) -> ShortPathHandler | None:
        """The handler for this request, or None to serve it through ASGI.

        Return a handler only when the body is small enough to collect in memory: a
        ``content-length`` within the handler's limit.
        """
        ...


class _Event:
    """Stands in for uvicorn's per-cycle ``asyncio.Event``: nothing waits on a short path."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NO_EVENT = _Event()


class _ShortCycle:
    """A short-path request in uvicorn's ``cycle`` slot (what uvicorn reads from a cycle)."""

    __slots__ = ("body", "disconnected", "handler", "keep_alive", "response_complete", "task")

    message_event = _NO_EVENT

    def __init__(self, handler: ShortPathHandler, keep_alive: bool) -> None:
        self.handler = handler
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.response_complete = False
        self.disconnected = False
        self.task: asyncio.Task[None] | None = None


_INTERNAL = Answer(
    500,
    ((b"content-type", b"application/json"),),
    b'{"code":"internal","message":"internal error"}',
)
_CANCELED = Answer(
    499,
    ((b"content-type", b"application/json"),),
    b'{"code":"canceled","message":"the server is stopping"}',
)


class ShortPathProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that lets `ShortPaths` answer requests without ASGI."""

    short_paths: ShortPaths  # set on the subclass `protocol_class` makes

    def on_headers_complete(self) -> None:
        parser = self.parser
        if (
            parser.get_method() == b"POST"
            and self.url.startswith(b"/")
            and b"?" not in self.url
            and (self.cycle is None or self.cycle.response_complete)
            and parser.get_http_version() == "1.1"
        ):
            # A query string, or an absolute URL, is left to ASGI: the handlers see paths.
            handler = self.short_paths.match(b"POST", self.url, self.headers)
            if handler is not None:
                self.cycle = _ShortCycle(handler, parser.should_keep_alive())  # type: ignore[assignment]
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        cycle: Any = self.cycle
        if type(cycle) is _ShortCycle:
            cycle.body.append(body)
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        cycle: Any = self.cycle
        if type(cycle) is _ShortCycle:
            if cycle.task is None:
                task = self.loop.create_task(self._answer(cycle))
                cycle.task = task
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            return
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        cycle: Any = self.cycle
        if type(cycle) is _ShortCycle and not cycle.response_complete:
            cycle.disconnected = True
            if cycle.task is not None:
                cycle.task.cancel()  # nobody is left to read the answer
        super().connection_lost(exc)

    async def _answer(self, cycle: _ShortCycle) -> None:
        body = b"".join(cycle.body) if len(cycle.body) != 1 else cycle.body[0]
        try:
            answer = await cycle.handler(self.headers, body)
        except asyncio.CancelledError:
            if not cycle.disconnected:  # cut by the server's stop: tell the caller why
                cycle.response_complete = True
                self.transport.write(_serialize(_CANCELED, keep_alive=False))
                self.transport.close()
            raise
        except Exception:
            log.exception("unhandled error answering a request on the short path")
            answer = _INTERNAL
        cycle.response_complete = True
        if cycle.disconnected:
            return
        transport = self.transport
        transport.write(_serialize(answer, cycle.keep_alive))
        if not cycle.keep_alive:
            transport.close()
        self.on_response_complete()


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
