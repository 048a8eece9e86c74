"""The host's fast local channel: uvicorn (httptools) on a Unix socket or loopback TCP.

hypercorn serves the host at ``url`` with every protocol. The fast channel serves the same
app over HTTP/1.1 (Connect and gRPC-Web) for plugins on this machine, with two short paths
that skip uvicorn's ASGI cycle (`plugin_di.rpc.fastproto`): routed Connect unary calls to a
lean upstream (`plugin_di.host.shortroute`) and the host's own unary RPCs
(`plugin_di.rpc.fastunary`). Everything else reaches the ASGI app.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any

from plugin_di.host.router import SERVICES_PREFIX, ServiceRouter
from plugin_di.host.shortroute import RoutedShortPaths
from plugin_di.rpc.asgi import ASGIApp, Receive, Scope, Send
from plugin_di.rpc.fastproto import AnyOf
from plugin_di.rpc.fastserve import serve_fast
from plugin_di.rpc.fastunary import UnaryShortPaths
from plugin_di.rpc.hypercorn import BoundSocket, bind_socket

__all__ = ["FastChannel", "wait_ended"]

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class FastChannel:
    """Binds at once (so ``url`` is known before the host starts); `start` serves it."""

    def __init__(self, bind: str | None = None) -> None:
        self._dir: str | None = None
        if bind is None:
            self._dir = tempfile.mkdtemp(prefix="plugin-di-host-")  # mode 0700
            bind = "unix:" + os.path.join(self._dir, "host.sock")
        elif not bind.startswith("unix:") and bind.rpartition(":")[0].strip("[]") not in _LOOPBACK:
            raise ValueError(
                f"the host's fast channel has no TLS, so it binds only a Unix socket or "
                f"loopback; {bind!r} is neither: use unix:/path or 127.0.0.1:0"
            )
        self._bound: BoundSocket | None = bind_socket(bind)
        if self._bound.network == "unix":
            self.url = self._bound.url
        else:
            self.url = "http+h1fast://" + self._bound.address
        self._serving: asyncio.Task[None] | None = None
        self._routed: RoutedShortPaths | None = None

    async def start(
        self,
        app: ASGIApp,
        router: ServiceRouter,
        connect_apps: Iterable[Any],
        *,
        max_message_bytes: int,
        shutdown: asyncio.Event,
    ) -> None:
        """Serve ``app`` until ``shutdown`` is set; return once it is ready."""
        assert self._bound is not None, "the fast channel was stopped"
        self._routed = RoutedShortPaths(router, max_body=max_message_bytes)
        short_paths = AnyOf(
            self._routed,
            UnaryShortPaths(connect_apps, max_message_bytes=max_message_bytes),
        )
        ready = asyncio.Event()
        self._serving = serving = asyncio.create_task(
            serve_fast(
                _FastEntry(app, router),
                self._bound,
                shutdown=shutdown,
                ready=ready.set,
                graceful_timeout=2.0,
                short_paths=short_paths,
            )
        )
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({waiter, serving}, return_when=asyncio.FIRST_COMPLETED)
        if serving in done:
            waiter.cancel()
            serving.result()
            raise RuntimeError(f"host fast channel stopped while starting on {self.url}")

    async def stop(self) -> None:
        """Wait for the server (its ``shutdown`` event must be set), then free the socket."""
        await wait_ended(self._serving, "host fast channel")
        self._serving = None
        if self._routed is not None:
            self._routed.close()
            self._routed = None
        if self._bound is not None:
            self._bound.close()
            self._bound = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


async def wait_ended(serving: asyncio.Task[None] | None, what: str) -> None:
    """Wait for a server task that was told to stop; an error it ends with is logged, since
    a stop must go on (e.g. hypercorn closing a TLS connection whose peer already left)."""
    if serving is None:
        return
    try:
        await serving
    except asyncio.CancelledError:
        pass
    except Exception:
        log.warning("%s ended with an error while stopping", what, exc_info=True)


class _FastEntry:
    """The host app as its second server sees it.

    Routed calls go straight to the router (it answers every error itself and drains what
    it refuses), skipping the mux's per-request wrapping; lifespan already runs under
    hypercorn, so it is acknowledged here without running twice.
    """

    def __init__(self, app: ASGIApp, router: ServiceRouter) -> None:
        self._app = app
        self._router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"].startswith(SERVICES_PREFIX):
            await self._router(scope, receive, send)
        elif kind != "lifespan":
            await self._app(scope, receive, send)
        else:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
