"""Where a host is served: its socket and, optionally, a local channel; one server on both.

The host's server (`plugin_di.rpc.serving`) listens at the host's ``url`` (cleartext or TLS;
with a client CA, TLS asks for client certificates and the handshake sees them) and, with a
local channel, also on a 0600 Unix socket in a private 0700 directory (no other user can
connect, and a Unix socket is a little faster than TCP), or on loopback TCP: the same app,
the same server, the same limits. On cleartext HTTP/1.1, routed Connect unary calls and the
host's own unary RPCs skip the ASGI cycle (short paths).
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from collections.abc import Sequence
from typing import Any

from plugin_di.host.client_cert import ClientCertScope, client_certificate_context
from plugin_di.host.router import ServiceRouter
from plugin_di.host.shortroute import RoutedShortPaths
from plugin_di.rpc.asgi import ServiceMux
from plugin_di.rpc.serving import (
    AnyOf,
    BoundSocket,
    Limits,
    Listener,
    ServeConfig,
    Server,
    bind_socket,
)
from plugin_di.rpc.unary_shortpath import UnaryShortPaths

__all__ = ["HostListeners"]

_Path = str | os.PathLike[str]
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class HostListeners:
    """The host's sockets, bound at once (so URLs are known before it starts), then served."""

    def __init__(self) -> None:
        self._bound: BoundSocket | None = None
        self._tls: tuple[_Path | None, _Path | None] = (None, None)
        self._local: _LocalChannel | None = None
        self._server: Server | None = None
        self._routed: RoutedShortPaths | None = None
        self.url: str | None = None
        """The host's URL once bound (``http://`` or ``https://``)."""
        self.local_url: str | None = None
        """The local channel's URL, or None without one."""

    @property
    def serving(self) -> bool:
        return self._server is not None

    def bind(self, address: str, *, certfile: _Path | None, keyfile: _Path | None) -> str:
        """Take the host's socket now (connections wait until `start`); its URL."""
        if self._bound is not None or self._server is not None:
            raise RuntimeError(f"host already bound to {self.url}")
        self._bound = bind_socket(address)
        self._tls = (certfile, keyfile)
        self.url = f"{'https' if certfile else 'http'}://{self._bound.address}"
        return self.url

    def bind_local(self, address: str | None = None) -> str:
        """Take the local channel's socket now (default: a Unix socket in a new private
        directory); its URL."""
        if self._local is not None:
            raise RuntimeError(f"host local channel already bound to {self.local_url}")
        self._local = _LocalChannel(address)
        self.local_url = self._local.url
        return self.local_url

    async def start(
        self,
        app: ServiceMux,
        router: ServiceRouter,
        connect_apps: Sequence[Any],
        *,
        client_ca: _Path | None,
        limits: Limits,
        grace_period: float,
    ) -> None:
        """Serve ``app`` on every bound socket until `stop`."""
        if self._bound is None:
            raise RuntimeError("bind the host's socket before starting it")
        served: Any = app
        if client_ca is not None:  # TLS asks for client certificates; the handshake sees them
            context: ssl.SSLContext | None = client_certificate_context(self._tls, client_ca)
            served = ClientCertScope(app)
        else:
            context = self._tls_context()
        listeners = [Listener(self._bound, context)]
        if self._local is not None:
            listeners.append(Listener(self._local.take()))
        max_body = app.max_message_bytes
        self._routed = RoutedShortPaths(router, max_body=max_body)
        short_paths = AnyOf(self._routed, UnaryShortPaths(connect_apps, max_message_bytes=max_body))
        self._bound = None  # the server owns the sockets now
        # Its deadlines run on real time, whatever clock the host's tokens use.
        self._server = Server(
            served, listeners, ServeConfig(limits, grace_period), short_paths=short_paths
        )
        await self._server.start()

    async def stop(self) -> None:
        """Stop serving (calls in flight get the grace period) and free every socket."""
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._routed is not None:
            self._routed.close()
            self._routed = None
        if self._local is not None:
            self._local.close()
            self._local = None
        if self._bound is not None:
            self._bound.close()  # bound, never served
            self._bound = None

    def _tls_context(self) -> ssl.SSLContext | None:
        certfile, keyfile = self._tls
        if certfile is None or keyfile is None:
            return None
        from plugin_di.rpc.tls import load_server_tls

        return load_server_tls(certfile, keyfile).ssl_context()


class _LocalChannel:
    """A private Unix socket (or a loopback port) beside the host's own."""

    def __init__(self, bind: str | None = None) -> None:
        self._dir: str | None = None
        if bind is None:
            self._dir = tempfile.mkdtemp(prefix="plugin-di-host-")  # mode 0700
            bind = "unix:" + os.path.join(self._dir, "host.sock")
        elif not bind.startswith("unix:") and bind.rpartition(":")[0].strip("[]") not in _LOOPBACK:
            raise ValueError(
                f"the host's local channel has no TLS, so it binds only a Unix socket or "
                f"loopback; {bind!r} is neither: use unix:/path or 127.0.0.1:0"
            )
        self._bound: BoundSocket | None = bind_socket(bind)
        self.url = self._bound.url

    def take(self) -> BoundSocket:
        """The bound socket, handed to the server that will serve (and close) it."""
        if self._bound is None:
            raise RuntimeError(f"the host's local channel {self.url} was taken or closed")
        bound, self._bound = self._bound, None
        return bound

    def close(self) -> None:
        """Free the socket if nobody took it, and remove the private directory."""
        if self._bound is not None:
            self._bound.close()
            self._bound = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
