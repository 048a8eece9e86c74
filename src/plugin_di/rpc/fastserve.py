"""Serve an ASGI app with uvicorn (httptools) on a pre-bound socket: the fast host channel.

hypercorn serves every protocol (gRPC needs its HTTP/2 and trailers) but its pure-Python
HTTP stacks cost most of a loopback call. A host calls a local plugin with Connect over
HTTP/1.1 (``plugin_di.rpc.h1.H1Transport`` on a Unix socket), which needs neither, and
uvicorn's C parser (httptools) serves that about twice as fast. Same contract as
`plugin_di.rpc.hypercorn.serve_asgi`: the socket is bound beforehand (so the handshake can
name it), ``ready`` runs once lifespan startup finished, ``shutdown`` stops it.

Served: Connect and gRPC-Web over HTTP/1.1. Not served: HTTP/2, gRPC, TLS (use hypercorn).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from plugin_di.rpc.asgi import ASGIApp
from plugin_di.rpc.hypercorn import BoundSocket

if TYPE_CHECKING:
    from plugin_di.rpc.fastproto import ShortPaths

__all__ = ["StartupFailed", "serve_fast"]

log = logging.getLogger(__name__)

# Idle keep-alive connections from the host live long: the host's pool reuses one per caller.
_KEEP_ALIVE_SECONDS = 300
_SHUTDOWN_POLL_SECONDS = 0.005


class StartupFailed(RuntimeError):
    """The app's lifespan startup failed, so nothing was served."""


async def serve_fast(
    app: ASGIApp,
    bound: BoundSocket,
    *,
    shutdown: asyncio.Event,
    ready: Callable[[], None] | None = None,
    graceful_timeout: float = 5.0,
    short_paths: ShortPaths | None = None,
) -> None:
    """Serve ``app`` on ``bound`` with uvicorn (httptools) until ``shutdown`` is set.

    Signals are left to the caller (uvicorn's own handlers would replace the loop's). On
    shutdown it stops accepting, closes idle keep-alive connections, gives requests still
    running ``graceful_timeout`` seconds, then runs lifespan shutdown. The socket is
    closed on return, and a Unix socket's file removed. Raises `StartupFailed` when the
    app's lifespan startup fails.

    ``short_paths`` answers the requests it takes without an ASGI cycle
    (`plugin_di.rpc.fastproto`); ``app`` serves the rest.
    """
    import uvicorn

    from plugin_di.rpc.fastproto import protocol_class

    config = uvicorn.Config(
        app,
        http=protocol_class(short_paths) if short_paths is not None else "httptools",
        ws="none",
        lifespan="auto",
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_keep_alive=_KEEP_ALIVE_SECONDS,
        # uvicorn types it int, but passes it on to asyncio.wait_for, which takes seconds as float
        timeout_graceful_shutdown=cast(Any, graceful_timeout),
        date_header=False,
        server_header=False,
        proxy_headers=False,  # no proxy in front: saves a middleware layer on every call
    )
    server = uvicorn.Server(config)
    sockets = [bound.sock]
    try:
        config.load()
        server.lifespan = config.lifespan_class(config)
        await _startup(server, sockets)
        await server.on_tick(0)  # computes the default response headers once
        if ready is not None:
            ready()
        await shutdown.wait()
        await _shutdown(server, graceful_timeout)
    finally:
        bound.close()


async def _shutdown(server: Any, graceful_timeout: float) -> None:
    """uvicorn's ``Server.shutdown`` without its fixed sleeps (0.1 s, then 0.1 s polls):
    a plugin's stop waited ~200 ms on them although its calls had already finished."""
    for listener in server.servers:
        listener.close()
    state = server.server_state
    for connection in list(state.connections):
        connection.shutdown()  # idle ones close now; busy ones after their answer
    loop = asyncio.get_running_loop()
    deadline = loop.time() + graceful_timeout
    # uvicorn keeps both in plain sets, with no event to wait on: poll, bounded.
    while (state.connections or state.tasks) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(_SHUTDOWN_POLL_SECONDS)
    for task in list(state.tasks):
        task.cancel()
    await server.lifespan.shutdown()


async def _startup(server: Any, sockets: list[Any]) -> None:
    try:
        await server.startup(sockets=sockets)
    except SystemExit:  # uvicorn exits the process when lifespan startup fails
        raise StartupFailed("the app's lifespan startup failed; see the log above") from None
