"""HTTP/2 connections (the h2 library): one ASGI call per stream, with trailers.

Each stream runs the app in its own task. Request bodies are flow-controlled: the client may
send a stream's window ahead, and the window reopens as the app reads, so a slow app holds a
fast sender back. Responses respect the client's windows: a slow reader holds the app back.
A response that ends before its request did is followed by RST_STREAM(NO_ERROR), which tells
the client to stop sending without failing the call (RFC 9113 8.1); data still in flight for
it is acknowledged and dropped, never a connection error.

Limits: ``max_streams`` concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS), a header list of
``max_header_bytes``, rapid reset (more than ``max_resets`` streams reset by the client, and
more reset than completed: GOAWAY ENHANCE_YOUR_CALM). Deadlines: the first request within
``header_timeout``; no stream for ``idle_timeout``, or every stream stalled on the client for
as long, closes the connection. A graceful stop sends GOAWAY at once (new streams are refused
and the client may retry them elsewhere), lets the streams already open finish, then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from plugin_di.rpc.serving._h2_stream import H2Stream
from plugin_di.rpc.serving._hub import Hub, base_scope, control_byte_in, unquote_path

__all__ = ["H2Connection"]

log = logging.getLogger("plugin_di.rpc.serving")

_STREAM_WINDOW = 256 * 1024
_CONNECTION_WINDOW = 1024 * 1024
_DEFAULT_WINDOW = 65_535


class _H2State(h2.connection.H2Connection):
    """h2's state machine, remembering fewer closed streams.

    h2 keeps a record of the last 65,536 closed streams of each connection (to tell a frame
    still in flight for a stream it reset from a protocol error). On a long-lived connection
    that is ~7.5 MiB of small objects whose churn fragments the heap: a host's RSS rose in
    steps over a 10-minute soak. With at most ``max_streams`` open at once, the last 1,024
    closed are more than a late frame can name; an older one gets RST_STREAM, a stream error.
    """

    MAX_CLOSED_STREAMS = 1024


class H2Connection(asyncio.Protocol):
    """One client connection speaking HTTP/2."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        limits = hub.limits
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=True
        )
        self.h2 = _H2State(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_bytes,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
            },
        )
        self.transport: Any = None
        self.loop: Any = None
        self.deadline: float | None = None
        self.write_paused = False
        self._flush_pending = False
        self._drainers: list[asyncio.Future[None]] = []
        self._scope: dict[str, Any] = {}
        self.streams: dict[int, H2Stream] = {}
        self._highest = 0
        self._going_away = False
        self._closed = False
        self._resets = 0
        self._completed = 0

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take over a connection an `H1Connection` admitted."""
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        hub = self.hub
        hub.connections.add(self)
        self._scope = base_scope(transport, hub.scheme, "2")
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_CONNECTION_WINDOW - _DEFAULT_WINDOW)
        self.flush()
        self.deadline = hub.clock.now() + hub.limits.header_timeout

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()  # h2 prepared the GOAWAY naming the error
            self.abort(flush=True)
            return
        for event in events:
            if self._closed:
                return
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.deadline = None
        self.hub.release(self)
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.lost()
        self._wake_drainers()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drainers()

    # -- the hub's side ------------------------------------------------------------------
    def expire(self) -> None:
        self.abort(flush=False)

    def shutdown(self) -> None:
        """GOAWAY now: no new streams; close once the open ones finish."""
        if self._closed or self._going_away:
            return
        self._going_away = True
        self.flush()  # what h2 holds goes out before the GOAWAY
        frame = GoAwayFrame(0)
        frame.last_stream_id = self._highest
        frame.error_code = ErrorCodes.NO_ERROR
        self.transport.write(frame.serialize())
        self._close_if_done()

    def abort(self, *, flush: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if flush:
            self.transport.close()
        else:
            self.transport.abort()

    # -- events --------------------------------------------------------------------------
    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        self._highest = max(self._highest, stream_id)
        if self._going_away or self.hub.stopping:
            self._reset(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        scope = self._request_scope(event.headers or [])
        if scope is None:
            self._reset(stream_id, ErrorCodes.PROTOCOL_ERROR)
            return
        stream = H2Stream(self, stream_id, scope)
        self.streams[stream_id] = stream
        self.deadline = None
        self.hub.begin(stream)
        stream.task = self.loop.create_task(stream.run())

    def _request_scope(self, headers: list[tuple[bytes, bytes]]) -> dict[str, Any] | None:
        method = path = authority = None
        regular: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if name[:1] == b":":
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":authority":
                    authority = value
            elif control_byte_in(value):
                return None  # malformed (RFC 9113 8.2.1): PROTOCOL_ERROR on the stream
            else:
                regular.append((name, value))
        if method is None or path is None or path[:1] != b"/":
            return None
        if authority is not None and not any(name == b"host" for name, _ in regular):
            regular.insert(0, (b"host", authority))
        raw_path, _, query = path.partition(b"?")
        scope = dict(self._scope)
        scope["method"] = method.decode("latin-1")
        scope["raw_path"] = raw_path
        scope["path"] = unquote_path(raw_path)
        scope["query_string"] = query
        scope["headers"] = regular
        extensions = dict(scope.get("extensions", {}))
        extensions["http.response.trailers"] = {}
        scope["extensions"] = extensions
        return scope

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        size = event.flow_controlled_length or 0
        if stream is None or stream.response_complete:
            self.h2.acknowledge_received_data(size, event.stream_id)  # nobody reads it
            return
        stream.feed(event.data or b"", size)

    def _on_end(self, event: h2.events.StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.complete()
            if stream.response_complete:
                self._forget(stream)

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is not None:
            stream.release_unread()
            stream.lost()
        if event.remote_reset:
            self._resets += 1
            if self._resets > self.hub.limits.max_resets and self._resets > self._completed:
                log.warning("a client reset %d streams (rapid reset?): disconnecting", self._resets)
                self.h2.close_connection(error_code=ErrorCodes.ENHANCE_YOUR_CALM)
                self.flush()
                self.abort(flush=True)
                return
        self._close_if_done()

    def _on_window(self, event: Any) -> None:
        stream_id = getattr(event, "stream_id", 0)
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream.wake_sender()
        else:
            for stream in list(self.streams.values()):
                stream.wake_sender()

    def _on_terminated(self, event: h2.events.ConnectionTerminated) -> None:
        self._going_away = True  # the client leaves: finish what it asked for, then close
        self._close_if_done()

    # -- streams' side -------------------------------------------------------------------
    def flush(self) -> None:
        """Write what h2 has prepared, now."""
        data = self.h2.data_to_send()
        if data and not self._closed:
            self.transport.write(data)

    def flush_soon(self) -> None:
        """Write what h2 has prepared once the running callback or task step is over.

        A unary response is headers, data and (gRPC) trailers sent one after another, and a
        request's window update comes with them: one write for all instead of one each.
        """
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_pending = False
        self.flush()

    def stream_done(self, stream: H2Stream) -> None:
        """``stream``'s response ended (whole or not)."""
        self.hub.end(stream)
        self._completed += 1
        if stream.body_complete or stream.lost_it:
            self._forget(stream)
        else:  # RFC 9113 8.1: the response is whole, the client may stop sending
            self._reset(stream.stream_id, ErrorCodes.NO_ERROR)
            self._forget(stream)

    def _forget(self, stream: H2Stream) -> None:
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        stream.release_unread()
        self._close_if_done()
        if not self.streams and not self._closed:
            self.deadline = self.hub.clock.now() + self.hub.limits.idle_timeout

    def stalled(self) -> None:
        """A stream waits for the client to read: if all do, the idle deadline runs."""
        if self.deadline is None and all(s.waiting for s in self.streams.values()):
            self.deadline = self.hub.clock.now() + self.hub.limits.idle_timeout

    def moving(self) -> None:
        if self.streams:
            self.deadline = None

    def _reset(self, stream_id: int, code: ErrorCodes) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.h2.reset_stream(stream_id, error_code=code)
        self.flush()

    def reset(self, stream: H2Stream, code: ErrorCodes) -> None:
        self._reset(stream.stream_id, code)

    def _close_if_done(self) -> None:
        if self._going_away and not self.streams and not self._closed:
            self.h2.close_connection()
            self.flush()
            self.abort(flush=True)

    async def drain(self) -> None:
        if self.write_paused and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drainers.append(waiter)
            await waiter

    def _wake_drainers(self) -> None:
        drainers, self._drainers = self._drainers, []
        for waiter in drainers:
            if not waiter.done():
                waiter.set_result(None)


_HANDLERS: dict[type, Any] = {
    h2.events.RequestReceived: H2Connection._on_request,
    h2.events.DataReceived: H2Connection._on_data,
    h2.events.StreamEnded: H2Connection._on_end,
    h2.events.StreamReset: H2Connection._on_reset,
    h2.events.WindowUpdated: H2Connection._on_window,
    h2.events.RemoteSettingsChanged: H2Connection._on_window,
    h2.events.ConnectionTerminated: H2Connection._on_terminated,
}
