"""One HTTP/1.1 request answered by the ASGI app (`H1Cycle`): its scope, body and response."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from plugin_di.rpc.serving.shortpath import status_line

if TYPE_CHECKING:
    from plugin_di.rpc.serving._h1 import H1Connection

__all__ = ["H1Cycle"]

log = logging.getLogger("plugin_di.rpc.serving")

_JSON = (b"content-type", b"application/json")
_INTERNAL_BODY = b'{"code":"internal","message":"internal error"}'
_CANCELED_BODY = b'{"code":"canceled","message":"the server is stopping"}'
_NO_BODY_STATUS = frozenset({204, 304})


class H1Cycle:
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
