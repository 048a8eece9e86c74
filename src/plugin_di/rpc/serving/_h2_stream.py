"""One HTTP/2 stream answered by the ASGI app (`H2Stream`): its body with flow control, its
response and trailers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes

if TYPE_CHECKING:
    from plugin_di.rpc.serving._h2 import H2Connection

__all__ = ["H2Stream"]

log = logging.getLogger("plugin_di.rpc.serving")

_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_JSON = [(b"content-type", b"application/json")]
_INTERNAL_BODY = b'{"code":"internal","message":"internal error"}'
_COALESCE_BYTES = 16 * 1024


class H2Stream:
    """One request answered by the ASGI app over an HTTP/2 stream."""

    def __init__(self, conn: H2Connection, stream_id: int, scope: dict[str, Any]) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self.scope = scope
        self._chunks: list[bytes] = []
        self._unacked = 0
        self._waiter: asyncio.Future[None] | None = None
        self._sender: asyncio.Future[None] | None = None
        self._status = 200
        self._headers: list[tuple[bytes, bytes]] = []
        self._trailers = False
        self._headers_sent = False
        self.body_complete = False
        self.body_delivered = False
        self.lost_it = False
        self.waiting = False
        self.response_started = False
        self.response_complete = False
        self.task: asyncio.Task[None] | None = None

    # -- the connection's side -----------------------------------------------------------
    def feed(self, data: bytes, flow_controlled: int) -> None:
        if data:
            self._chunks.append(data)
        self._unacked += flow_controlled
        self._wake()

    def release_unread(self) -> None:
        """Drop what the app never read and give its bytes back to the connection's window
        (else every early answer on a long connection shrinks that window for good)."""
        self._chunks = []
        if self._unacked:
            self._conn.h2.acknowledge_received_data(self._unacked, self.stream_id)
            self._unacked = 0
            self._conn.flush_soon()

    def complete(self) -> None:
        self.body_complete = True
        self._wake()

    def lost(self) -> None:
        if self.lost_it:
            return
        self.lost_it = True
        self._wake()
        self.wake_sender()
        if not self.response_complete:
            self.response_complete = True
            self._conn.hub.end(self)
            if self.task is not None and not self.task.done():
                self.task.cancel()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def wake_sender(self) -> None:
        sender = self._sender
        if sender is not None:
            self._sender = None
            if not sender.done():
                sender.set_result(None)

    def _wake(self) -> None:
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
            if not self.response_complete:
                self._abandon(ErrorCodes.CANCEL)  # the stop's grace period ran out
        except Exception:
            log.exception("unhandled error serving %s", self.scope.get("path"))
            self._fail()
        else:
            if not self.response_complete:
                log.error("the app returned without a complete response to %s", self.scope["path"])
                self._fail()

    def _fail(self) -> None:
        if self.response_complete:
            return
        if self._headers_sent:
            self._abandon(ErrorCodes.INTERNAL_ERROR)
            return
        self._status, self._headers, self._trailers = 500, list(_JSON), False
        self._send_headers(end=False)
        self._conn.h2.send_data(self.stream_id, _INTERNAL_BODY, end_stream=True)
        self._conn.flush()
        self._finish()

    def _abandon(self, code: ErrorCodes) -> None:
        self.response_complete = True
        self._conn.hub.end(self)
        self._conn.reset(self, code)
        self._conn._forget(self)

    async def receive(self) -> dict[str, Any]:
        conn = self._conn
        while True:
            if self.lost_it or self.response_complete:
                return {"type": "http.disconnect"}
            if self._chunks or (self.body_complete and not self.body_delivered):
                chunks = self._chunks
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._chunks = []
                if self._unacked:
                    conn.h2.acknowledge_received_data(self._unacked, self.stream_id)
                    self._unacked = 0
                    conn.flush_soon()
                more = not self.body_complete
                self.body_delivered = not more
                return {"type": "http.request", "body": body, "more_body": more}
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if self.lost_it or self.response_complete:
            return
        if kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self.response_started = True
            self._status = int(message["status"])
            self._headers = [
                (bytes(name).lower(), bytes(value))
                for name, value in message.get("headers", ())
                if bytes(name).lower() not in _HOP_BY_HOP
            ]
            self._trailers = bool(message.get("trailers", False))
        elif kind == "http.response.body":
            if not self.response_started:
                raise RuntimeError("ASGI: http.response.body before http.response.start")
            body = bytes(message.get("body", b""))
            last = not message.get("more_body", False)
            end = last and not self._trailers
            if not self._headers_sent:
                self._send_headers(end=end and not body)
                if end and not body:
                    self._finish()
                    return
            await self._send_data(body, end=end)
            if end:
                self._finish()
        elif kind == "http.response.trailers":
            if not self.response_started:
                raise RuntimeError("ASGI: http.response.trailers before http.response.start")
            if not self._headers_sent:
                self._send_headers(end=False)
            if message.get("more_trailers", False):
                raise RuntimeError("ASGI: more_trailers is not supported")
            trailers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
            self._conn.h2.send_headers(self.stream_id, trailers, end_stream=True)
            self._conn.flush_soon()
            self._finish()
        else:
            raise RuntimeError(f"ASGI: unexpected message {kind!r} on an HTTP/2 stream")

    def _send_headers(self, *, end: bool) -> None:
        self._headers_sent = True
        headers = [(b":status", str(self._status).encode()), *self._headers]
        self._conn.h2.send_headers(self.stream_id, headers, end_stream=end)
        self._conn.flush_soon()

    async def _send_data(self, data: bytes, *, end: bool) -> None:
        conn = self._conn
        connection = conn.h2
        view = memoryview(data)
        while True:
            if self.lost_it:
                return
            window = min(
                connection.local_flow_control_window(self.stream_id),
                connection.max_outbound_frame_size,
            )
            if window <= 0 and view:
                await self._wait_for_window()
                continue
            chunk, view = view[:window], view[window:]
            if chunk or (end and not view):  # an empty DATA frame only to end the stream
                connection.send_data(self.stream_id, bytes(chunk), end_stream=end and not view)
                if len(chunk) > _COALESCE_BYTES:
                    conn.flush()  # large bodies go out as they are framed
                else:
                    conn.flush_soon()
            if not view:
                break
        if conn.write_paused:
            self.waiting = True
            conn.stalled()
            try:
                await conn.drain()
            finally:
                self.waiting = False
                conn.moving()

    async def _wait_for_window(self) -> None:
        conn = self._conn
        sender = asyncio.get_running_loop().create_future()
        self._sender = sender
        self.waiting = True
        conn.stalled()
        try:
            await sender
        finally:
            self.waiting = False
            conn.moving()

    def _finish(self) -> None:
        self.response_complete = True
        self._wake()
        self._conn.stream_done(self)
