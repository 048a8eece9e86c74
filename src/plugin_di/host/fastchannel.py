"""The host's local channel: a second listener, on a private Unix socket or loopback TCP.

The host's server (`plugin_di.rpc.serving`) listens at ``url`` and, with a local channel,
also here: plugins on this machine reach the host through a 0600 socket in a private 0700
directory (no other user can connect, and a Unix socket is a little faster than TCP), or
through loopback TCP. It is the same app and the same server, with the same limits.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from plugin_di.rpc.serving import BoundSocket, bind_socket

__all__ = ["LocalChannel"]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class LocalChannel:
    """Binds at once (so ``url`` is known before the host starts); the server takes it."""

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
        if self._bound.network == "unix":
            self.url = self._bound.url
        else:
            self.url = "http://" + self._bound.address

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
