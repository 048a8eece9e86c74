"""Relay one HTTP/1.1 request to a provider and its response back, as bytes.

The host's short path for routed calls (`plugin_di.host.shortroute`) has already checked
the caller and built the request head from the path the router parsed and checked. What
is left is moving bytes: the request goes to a pooled keep-alive connection to the
provider in one write, and the response is written to the caller as it arrives, never
re-encoded. httptools parses the response only to know where it ends and whether the
connection may be reused.

Failures follow the lean client's rules (`plugin_di.rpc.h1`): a connection idle for
`IDLE_TIMEOUT` is not reused (the provider may be timing it out); a pooled connection that
turns out to be closed before any byte of the answer came back is retried once on a new
one (nothing was processed); a provider that cannot be reached, or goes away before its
answer started, is UNAVAILABLE; one that goes away mid-answer drops the caller's
connection, since the answer cannot be completed. A caller that goes away closes the
provider connection, which cancels the call there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httptools

from plugin_di.rpc.mounts import IDLE_TIMEOUT, MOUNTS, client_address, split_url, unix_socket_path
from plugin_di.rpc.serving.shortpath import Exchange

__all__ = ["SPLICE_SCHEMES", "SplicePool", "splice_authority"]

SPLICE_SCHEMES = tuple(prefix for prefix, mount in MOUNTS.items() if mount.http1_cleartext)
"""Provider URLs spoken in HTTP/1.1 on cleartext (``http://``, its alias ``http+h1fast://``,
``unix:``): the ones a request can be spliced to."""

log = logging.getLogger(__name__)

Refuse = Callable[[Exchange, str], None]
"""Answers the caller with UNAVAILABLE and a message, in the caller's protocol."""

_IDLE_PER_UPSTREAM = 64


class _Call:
    """One request in flight: where its answer goes and who to tell when it ends."""

    __slots__ = ("data", "done", "exchange", "refuse", "retried", "upstream")

    def __init__(
        self,
        upstream: str,
        data: bytes,
        exchange: Exchange,
        done: Callable[[], None],
        refuse: Refuse,
    ) -> None:
        self.upstream = upstream
        self.data = data
        self.exchange = exchange
        self.done = done
        self.refuse = refuse
        self.retried = False


class _Connection(asyncio.Protocol):
    """A keep-alive connection to one provider, relaying one answer at a time."""

    def __init__(self, pool: SplicePool, upstream: str) -> None:
        self._pool = pool
        self._upstream = upstream
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._call: _Call | None = None
        self._answered = False  # a byte of the answer came back
        self._complete = False  # the answer's end was parsed in the current read
        self._overrun = False  # bytes that are not the answer: never relayed
        self._keep_alive = False
        self._paused = False  # reads stopped while the caller drains
        self.closed = False
        self.idle_since = 0.0  # when it went back to the pool (time.monotonic)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def send(self, call: _Call) -> None:
        """Send ``call``'s request; its answer is relayed as it comes."""
        assert self._transport is not None
        self._call = call
        self._answered = False
        call.exchange.on_disconnect(self._caller_gone)
        call.exchange.on_flow(self._caller_writable)
        self._transport.write(call.data)

    def data_received(self, data: bytes) -> None:
        call = self._call
        if call is None:  # nothing asked: a provider talking out of turn
            self._close()
            return
        self._answered = True
        self._complete = self._overrun = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._overrun = True
        if self._overrun:
            # Malformed, or bytes after the answer's end: never pass them on (they could
            # pose as the answer to the caller's next call, to another provider).
            log.warning("provider at %s sent a malformed or overlong answer", self._upstream)
            self._call = None
            call.exchange.abort()
            call.done()
            self._close()
            return
        call.exchange.write(data)
        if self._complete:
            self._call = None
            call.exchange.on_disconnect(None)
            call.exchange.on_flow(None)
            self._caller_writable(True)  # the answer is whole: read the next one
            call.done()
            call.exchange.finish(self._keep_alive)
            if self._keep_alive and not self.closed:  # the parser is ready for the next one
                self._pool.release(self._upstream, self)
            else:
                self._close()

    # httptools callbacks, while data_received feeds the parser
    def on_message_begin(self) -> None:
        if self._complete:  # a second answer in the same read: nothing asked for it
            self._overrun = True

    def on_message_complete(self) -> None:
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        call = self._call
        if call is None:
            self._pool.discard(self._upstream, self)  # idle: a provider gone or restarted
            return
        self._call = None
        call.exchange.on_disconnect(None)
        if self._answered:
            call.exchange.abort()  # half an answer was relayed: it cannot be completed
            call.done()
        elif not call.retried:
            call.retried = True  # a stale keep-alive connection: nothing was processed
            self._pool.send_on_new(call)
        else:
            call.done()
            call.refuse(call.exchange, "provider closed the connection before answering")

    def _caller_writable(self, writable: bool) -> None:
        # Backpressure: a caller reading slowly stops the reads from the provider.
        if self._transport is None or self.closed or writable != self._paused:
            return
        self._paused = not writable
        if writable:
            self._transport.resume_reading()
        else:
            self._transport.pause_reading()

    def _caller_gone(self) -> None:
        call = self._call
        self._call = None
        if call is not None:
            call.done()
        self._close()  # the provider sees the disconnect and cancels the call

    def _close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


def splice_authority(url: str) -> str:
    """The Host header value for a provider URL (``localhost`` on a Unix socket)."""
    if url.startswith("unix:"):
        return "localhost"
    return client_address(url).split("://", 1)[1]


class SplicePool:
    """Keep-alive connections to providers (`SPLICE_SCHEMES`), by URL."""

    def __init__(self) -> None:
        self._idle: dict[str, list[_Connection]] = {}
        self._closing = False

    def send(
        self,
        upstream: str,
        data: bytes,
        exchange: Exchange,
        *,
        done: Callable[[], None],
        refuse: Refuse,
    ) -> None:
        """Relay ``data`` (a whole request) to ``upstream`` and its answer to ``exchange``.

        ``done`` is called once, when the call ended in any way.
        """
        call = _Call(upstream, data, exchange, done, refuse)
        idle = self._idle.get(upstream)
        if idle:
            now = time.monotonic()  # not the loop's time: in 3.11 its lookup costs a getpid()
            while idle:
                connection = idle.pop()
                if connection.closed:
                    continue
                if now - connection.idle_since >= IDLE_TIMEOUT:
                    connection._close()  # the provider may be closing it right now
                    continue
                connection.send(call)
                return
        call.retried = True  # a new connection is not stale: no retry
        self.send_on_new(call)

    def send_on_new(self, call: _Call) -> None:
        """Open a new connection for ``call`` (a task the caller's disconnect cancels)."""
        call.exchange.run(self._connect_and_send(call))

    async def _connect_and_send(self, call: _Call) -> None:
        loop = asyncio.get_running_loop()
        upstream = call.upstream
        try:
            if upstream.startswith("unix:"):
                _, connection = await loop.create_unix_connection(
                    lambda: _Connection(self, upstream), unix_socket_path(upstream)
                )
            else:
                host, port, _ = split_url(client_address(upstream))
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, upstream), host, port
                )
        except OSError as error:
            log.warning("cannot reach provider at %s: %s", upstream, error)
            call.done()
            call.refuse(call.exchange, "provider is unreachable")
            return
        except BaseException:
            call.done()
            raise
        connection.send(call)

    def release(self, upstream: str, connection: _Connection) -> None:
        """Keep ``connection`` for the next call to ``upstream``."""
        idle = self._idle.setdefault(upstream, [])
        if self._closing or len(idle) >= _IDLE_PER_UPSTREAM:
            connection._close()
        else:
            connection.idle_since = time.monotonic()
            idle.append(connection)

    def discard(self, upstream: str, connection: _Connection) -> None:
        """Forget an idle connection that closed (and the upstream, once it has none)."""
        idle = self._idle.get(upstream)
        if idle is not None and connection in idle:
            idle.remove(connection)
            if not idle:
                del self._idle[upstream]

    def close(self) -> None:
        """Close every idle connection; busy ones close when their call ends."""
        self._closing = True
        idle_lists = list(self._idle.values())
        self._idle.clear()
        for idle in idle_lists:
            for connection in idle:
                connection._close()
