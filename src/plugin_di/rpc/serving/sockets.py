"""Listening sockets bound before serving starts, so the handshake line can name them.

Binding first (``127.0.0.1:0`` or a Unix socket with 0600 permissions) means the real address
is known before serving starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BoundSocket", "bind_socket"]


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
