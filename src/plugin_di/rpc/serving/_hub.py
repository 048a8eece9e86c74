"""What the connections of one listener share: the app, the limits, the clock, the books.

A hub counts its listener's connections (the cap) and tells each when its deadline passed;
`Requests` keeps every request in flight on any listener of a server (a graceful stop waits
for them and cancels the rest).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable
from typing import Any, Protocol

from plugin_di.clock import Clock
from plugin_di.rpc.asgi import ASGIApp
from plugin_di.rpc.serving.config import Limits
from plugin_di.rpc.serving.shortpath import ShortPaths

__all__ = ["Connection", "Hub", "InFlight", "Requests", "control_byte_in", "unquote_path"]

control_byte_in: Callable[[bytes], object] = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
"""Whether a header value holds a control character other than HTAB (RFC 9110 5.5): such a
request is malformed, refused before any app or relay sees it (a relay could not forward
it)."""

log = logging.getLogger("plugin_di.rpc.serving")


class InFlight(Protocol):
    """A request being answered: a graceful stop cancels it when the grace period is over."""

    def cancel(self) -> None: ...


class Connection(Protocol):
    """What the hub asks of a connection, whatever protocol it speaks."""

    deadline: float | None
    """When the connection is cut (hub clock seconds), or None while it waits on the app."""

    def expire(self) -> None:
        """The deadline passed: close the connection."""
        ...

    def shutdown(self) -> None:
        """A graceful stop began: finish what is in flight, take nothing new, then close."""
        ...

    def abort(self) -> None:
        """Close now."""
        ...


class Requests:
    """The requests in flight on every listener of a server: what a graceful stop waits for."""

    def __init__(self) -> None:
        self._in_flight: set[InFlight] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._in_flight)

    def begin(self, request: InFlight) -> None:
        """A request is being answered (until `end`)."""
        if not self._in_flight:
            self._idle.clear()
        self._in_flight.add(request)

    def end(self, request: InFlight) -> None:
        in_flight = self._in_flight
        in_flight.discard(request)
        if not in_flight:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no request is in flight."""
        await self._idle.wait()

    def cancel_all(self) -> None:
        """Cancel every request still in flight (the grace period is over)."""
        for request in list(self._in_flight):
            request.cancel()


class Hub:
    """Shared by the connections of one listener."""

    def __init__(
        self,
        app: ASGIApp,
        limits: Limits,
        clock: Clock,
        requests: Requests,
        *,
        short_paths: ShortPaths | None = None,
        tls: bool = False,
    ) -> None:
        self.app = app
        self.limits = limits
        self.clock = clock
        self.requests = requests
        self.short_paths = short_paths
        self.scheme = "https" if tls else "http"
        self.connections: set[Connection] = set()
        self.stopping = False
        self.refused = 0
        """Connections closed at once because the cap was reached."""

    def admit(self, connection: Connection) -> bool:
        """Count a new connection in; False when the cap is reached or the server stops."""
        if self.stopping or len(self.connections) >= self.limits.max_connections:
            self.refused += 1
            return False
        self.connections.add(connection)
        return True

    def release(self, connection: Connection) -> None:
        self.connections.discard(connection)

    def sweep(self) -> None:
        """Cut the connections whose deadline passed."""
        now = self.clock.now()
        for connection in [c for c in self.connections if c.deadline is not None]:
            deadline = connection.deadline
            if deadline is not None and now >= deadline:
                connection.expire()

    def begin(self, request: InFlight) -> None:
        self.requests.begin(request)

    def end(self, request: InFlight) -> None:
        self.requests.end(request)


def peer_certificate_pem(transport: asyncio.BaseTransport) -> str | None:
    """The verified TLS client certificate of a connection, as PEM (None without one)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der) if der else None


def addresses(
    transport: asyncio.BaseTransport,
) -> tuple[tuple[str, int] | None, tuple[str, int | None] | None]:
    """(client, server) of a connection, as ASGI scopes hold them."""
    peer = transport.get_extra_info("peername")
    local = transport.get_extra_info("sockname")
    client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
    if isinstance(local, tuple) and len(local) >= 2:
        server: tuple[str, int | None] | None = (str(local[0]), int(local[1]))
    elif isinstance(local, str) and local:
        server = (local, None)
    else:
        server = None
    return client, server


def base_scope(transport: asyncio.BaseTransport, scheme: str, http_version: str) -> dict[str, Any]:
    """The parts of an ASGI HTTP scope that every request of a connection shares."""
    client, server = addresses(transport)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version,
        "scheme": scheme,
        "root_path": "",
        "client": client,
        "server": server,
    }
    pem = peer_certificate_pem(transport) if scheme == "https" else None
    if pem is not None:
        scope["extensions"] = {"tls": {"client_cert_chain": [pem]}}
    return scope


def unquote_path(raw_path: bytes) -> str:
    """The ASGI ``path`` of a raw request path: percent-decoded as UTF-8."""
    if b"%" not in raw_path:
        return raw_path.decode("latin-1")
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(raw_path).decode("utf-8", "replace")
