"""Serve an ASGI app with hypercorn on a socket bound beforehand, for plugin channels.

Binding first (``127.0.0.1:0`` or a Unix socket with 0600 permissions) means the real address
is known before serving starts, so the handshake line can report it. One port speaks HTTP/2
cleartext (prior knowledge) and HTTP/1.1; with a certificate it speaks TLS with ALPN h2 and
http/1.1. Serving needs Connect, gRPC and gRPC-Web, and gRPC needs HTTP/2 trailers: hypercorn
is the one ASGI server that has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugin_di.rpc.asgi import ASGIApp, Message, Receive, Scope, Send
from plugin_di.rpc.hygiene import StreamHygiene

if TYPE_CHECKING:
    # hypercorn costs ~40 ms to import; a plugin on the fast channel (uvicorn) never needs it.
    from hypercorn.config import Config

__all__ = ["BoundSocket", "bind_socket", "hypercorn_config", "serve_asgi"]

log = logging.getLogger(__name__)

# Hypercorn closes an HTTP/2 connection at its 1001st request by default; a plugin channel is
# one long-lived connection, so the limit is effectively removed.
KEEP_ALIVE_MAX_REQUESTS = 10**12


@dataclass(frozen=True)
class BoundSocket:
    """A listening socket and the address a client dials to reach it.

    ``network`` is ``"tcp"`` or ``"unix"``; ``address`` is ``host:port`` or the socket path,
    as go-plugin's handshake line writes them.
    """

    sock: socket.socket
    network: str
    address: str

    @property
    def url(self) -> str:
        """The base URL a client uses: ``http://host:port`` or ``unix:///path``."""
        if self.network == "unix":
            return "unix://" + self.address
        return "http://" + self.address

    def close(self) -> None:
        """Close the socket, and remove a Unix socket's file."""
        self.sock.close()
        if self.network == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)


def bind_socket(address: str = "127.0.0.1:0", *, backlog: int = 1024) -> BoundSocket:
    """Bind and listen on ``HOST:PORT`` (port 0 picks a free one) or ``unix:/path``.

    A Unix socket gets permissions 0600 before it listens, so no other user can connect; a
    stale socket file left by a dead process is replaced, any other file is an error.
    """
    if address.startswith("unix:"):
        return _bind_unix(address.removeprefix("unix:").removeprefix("//"), backlog)
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"bind address {address!r} is not HOST:PORT or unix:/path")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, int(port_text)))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {address}: {exc.strerror}") from exc
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    return BoundSocket(sock, "tcp", f"{shown}:{bound_port}")


def _bind_unix(path_text: str, backlog: int) -> BoundSocket:
    path = Path(path_text)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise FileExistsError(
                f"cannot listen on unix:{path}: a file that is not a socket is in the way; "
                "remove it or choose another path"
            )
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        # Before listen(), nobody can connect, so the mode is set before anyone could.
        os.chmod(path, 0o600)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on unix:{path}: {exc.strerror}") from exc
    return BoundSocket(sock, "unix", str(path))


def hypercorn_config(
    *,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    client_ca: str | os.PathLike[str] | None = None,
    graceful_timeout: float = 5.0,
    keep_alive_timeout: float = 300.0,
    log_level: str = "WARNING",
) -> Config:
    """A hypercorn Config for plugin channels.

    No access log, errors to stderr, keep-alive effectively unlimited. With ``certfile`` and
    ``keyfile``: TLS with ALPN ``h2`` and ``http/1.1``; with ``client_ca`` too, clients must
    present a certificate signed by it (mTLS).
    """
    if (certfile is None) != (keyfile is None):
        raise ValueError("TLS needs both a certificate file and a key file; pass both or neither")
    if client_ca is not None and certfile is None:
        raise ValueError("client certificate checks (client_ca) need TLS: pass certfile/keyfile")
    from hypercorn.config import Config

    config = Config()
    config.accesslog = None
    config.loglevel = log_level
    config.keep_alive_max_requests = KEEP_ALIVE_MAX_REQUESTS
    config.keep_alive_timeout = keep_alive_timeout
    config.graceful_timeout = graceful_timeout
    config.alpn_protocols = ["h2", "http/1.1"]
    if certfile is not None and keyfile is not None:
        config.certfile = os.fspath(certfile)
        config.keyfile = os.fspath(keyfile)
    if client_ca is not None:
        config.ca_certs = os.fspath(client_ca)
        config.verify_mode = ssl.CERT_REQUIRED
    return config


class _ReadyOnStartup:
    """Calls ``ready`` once lifespan startup completes (or the app turns lifespan down)."""

    def __init__(self, app: ASGIApp, ready: Callable[[], None]) -> None:
        self._app = app
        self._ready = ready
        self._called = False

    def _fire(self) -> None:
        if not self._called:
            self._called = True
            self._ready()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self._app(scope, receive, send)
            return

        answered = False

        async def lifespan_send(message: Message) -> None:
            nonlocal answered
            answered = True
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                self._fire()

        try:
            await self._app(scope, receive, lifespan_send)
        except Exception:
            # An app that raises before answering refuses lifespan, and hypercorn serves on;
            # one that reported a failed startup is not ready.
            if not answered:
                self._fire()
            raise


async def serve_asgi(
    app: ASGIApp,
    bound: BoundSocket,
    *,
    config: Config | None = None,
    shutdown: asyncio.Event | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` on the pre-bound socket until ``shutdown`` is set (or SIGINT/SIGTERM).

    ``ready`` is called once lifespan startup completed, just before connections are
    accepted (the socket already listens, so earlier clients wait in its backlog). On shutdown
    hypercorn stops accepting, lets in-flight requests finish within the config's
    ``graceful_timeout``, then runs lifespan shutdown. The socket is closed on return, and a
    Unix socket's file removed.
    """
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.config import Sockets
    from hypercorn.utils import wrap_app

    config = config if config is not None else hypercorn_config()
    hygienic = StreamHygiene(app)
    served: Any = _ReadyOnStartup(hygienic, ready) if ready is not None else hygienic
    if config.ssl_enabled:
        sockets = Sockets(secure_sockets=[bound.sock], insecure_sockets=[], quic_sockets=[])
    else:
        sockets = Sockets(secure_sockets=[], insecure_sockets=[bound.sock], quic_sockets=[])
    trigger: Callable[[], Awaitable[Any]] | None = shutdown.wait if shutdown is not None else None
    try:
        await worker_serve(
            wrap_app(served, config.wsgi_max_body_size, "asgi"),
            config,
            sockets=sockets,
            shutdown_trigger=trigger,
        )
    finally:
        bound.close()
