"""One server for every listener: HTTP/1.1 and HTTP/2 on one port, cleartext or TLS.

`Server` binds nothing itself: it serves sockets bound beforehand (`sockets.bind_socket`), so
a handshake line can name an address before serving starts. Every connection starts as an
`H1Connection`, which hands itself over to an `H2Connection` when ALPN chose ``h2`` or the
client opened with the HTTP/2 preface. The `Limits` hold on every connection; a sweeper on
the injected clock cuts those whose deadline passed. One app may be served on several
listeners at once (say loopback TCP with TLS and a private Unix socket): its lifespan runs
once.

A graceful stop (`stop`) closes the listeners first (new connections are refused by the
kernel), closes idle connections, sends GOAWAY on HTTP/2 ones and answers the HTTP/1.1
requests already read with ``connection: close``; requests in flight get the grace period,
then are cancelled (the caller gets CANCELED); then lifespan shutdown runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc.asgi import ASGIApp
from plugin_di.rpc.serving._h1 import H1Connection
from plugin_di.rpc.serving._hub import Hub, Requests
from plugin_di.rpc.serving._lifespan import Lifespan
from plugin_di.rpc.serving.config import ServeConfig
from plugin_di.rpc.serving.shortpath import ShortPaths
from plugin_di.rpc.serving.sockets import BoundSocket

__all__ = ["Listener", "Server", "serve"]

log = logging.getLogger("plugin_di.rpc.serving")

ALPN = ["h2", "http/1.1"]
_SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Listener:
    """A bound socket to serve, cleartext or with a TLS server context.

    A TLS context gets ALPN ``h2`` and ``http/1.1``. Short paths never serve TLS listeners:
    their handlers would not see the client certificate.
    """

    bound: BoundSocket
    tls: ssl.SSLContext | None = None


class Server:
    """Serves ``app`` on its listeners until `stop`."""

    def __init__(
        self,
        app: ASGIApp,
        listeners: BoundSocket | Listener | Sequence[Listener],
        config: ServeConfig | None = None,
        *,
        short_paths: ShortPaths | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if isinstance(listeners, BoundSocket):
            listeners = [Listener(listeners)]
        elif isinstance(listeners, Listener):
            listeners = [listeners]
        self.config = config if config is not None else ServeConfig()
        self.listeners = list(listeners)
        self.clock = clock
        self.requests = Requests()
        self.hubs = [
            Hub(
                app,
                self.config.limits,
                clock,
                self.requests,
                short_paths=short_paths if listener.tls is None else None,
                tls=listener.tls is not None,
            )
            for listener in self.listeners
        ]
        self._lifespan = Lifespan(app)
        self._servers: list[asyncio.AbstractServer] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._started = False
        self._stopped = False

    @property
    def in_flight(self) -> int:
        """Requests being answered now."""
        return len(self.requests)

    @property
    def connections(self) -> int:
        """Open connections, on every listener."""
        return sum(len(hub.connections) for hub in self.hubs)

    async def start(self) -> None:
        """Run lifespan startup, then accept connections (raises `StartupFailed`)."""
        if self._started:
            raise RuntimeError("the server was started already")
        self._started = True
        try:
            await self._lifespan.startup()
            loop = asyncio.get_running_loop()
            for listener, hub in zip(self.listeners, self.hubs, strict=True):
                self._servers.append(await _listen(loop, listener, hub))
        except BaseException:
            await self._close()
            raise
        self._sweeper = loop.create_task(self._sweep())

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop gracefully: refuse new connections, finish or cancel what is in flight."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.config.grace_period if grace_period is None else grace_period
        for hub in self.hubs:
            hub.stopping = True
        for server in self._servers:
            server.close()
        self._shutdown_connections()
        requests = self.requests
        if len(requests):
            await _first(requests.wait_idle(), self.clock.sleep(grace))
            if len(requests):
                log.warning("grace period over: cancelling %d request(s) in flight", len(requests))
                requests.cancel_all()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_SETTLE_SECONDS):
                        await requests.wait_idle()
        self._shutdown_connections()
        await asyncio.sleep(0)
        for hub in self.hubs:
            for connection in list(hub.connections):
                connection.abort()
        await self._close()

    async def serve(self, shutdown: asyncio.Event, ready: Callable[[], None] | None = None) -> None:
        """`start`, call ``ready``, serve until ``shutdown`` is set, then `stop`."""
        try:
            await self.start()
            if ready is not None:
                ready()
            await shutdown.wait()
        finally:
            await self.stop()

    def _shutdown_connections(self) -> None:
        for hub in self.hubs:
            for connection in list(hub.connections):
                connection.shutdown()

    async def _close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self._lifespan.shutdown()
        for listener in self.listeners:
            listener.bound.close()

    async def _sweep(self) -> None:
        limits = self.config.limits
        tick = min(1.0, max(0.05, min(limits.header_timeout, limits.idle_timeout) / 4))
        while True:
            await self.clock.sleep(tick)
            for hub in self.hubs:
                hub.sweep()


async def _listen(
    loop: asyncio.AbstractEventLoop, listener: Listener, hub: Hub
) -> asyncio.AbstractServer:
    context = listener.tls
    if context is not None:
        context.set_alpn_protocols(ALPN)
    return await loop.create_server(
        lambda: H1Connection(hub),
        sock=listener.bound.sock,
        ssl=context,
        ssl_handshake_timeout=hub.limits.header_timeout if context is not None else None,
    )


async def _first(*waits: Coroutine[Any, Any, None]) -> None:
    """Wait until the first of ``waits`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve(
    app: ASGIApp,
    listeners: BoundSocket | Listener | Sequence[Listener],
    *,
    shutdown: asyncio.Event,
    ready: Callable[[], None] | None = None,
    config: ServeConfig | None = None,
    short_paths: ShortPaths | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Serve ``app`` until ``shutdown`` is set (a `Server` started, served and stopped)."""
    server = Server(app, listeners, config, short_paths=short_paths, clock=clock)
    await server.serve(shutdown, ready)
