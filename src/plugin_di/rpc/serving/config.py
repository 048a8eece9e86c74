"""How a server guards its listeners, and how it stops: `Limits` and `ServeConfig`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Limits", "ServeConfig"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits every listener enforces, whatever protocol a connection speaks.

    Durations are seconds. A connection must send a complete request head within
    ``header_timeout`` of opening (or of its first byte after an idle pause), and is closed once
    it has been idle, with nothing in flight, for ``idle_timeout``; the same inactivity bound
    applies while a request body is being read. Connections past ``max_connections`` are closed
    at once. An HTTP/2 connection may open ``max_streams`` streams at a time. A request head
    (HTTP/1.1 request line and headers, or an HTTP/2 header list) may hold ``max_header_bytes``.
    Up to ``write_buffer_bytes`` wait in a connection's send buffer before the app is held back.
    An HTTP/2 client that resets more than ``max_resets`` streams, and more than it completed,
    is told to calm down and disconnected (rapid reset).
    """

    header_timeout: float = 10.0
    idle_timeout: float = 20.0
    max_connections: int = 1024
    max_streams: int = 100
    max_header_bytes: int = 64 * 1024
    write_buffer_bytes: int = 256 * 1024
    max_resets: int = 200

    def __post_init__(self) -> None:
        for name in ("header_timeout", "idle_timeout"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"Limits.{name} must be a positive number of seconds, not {value}")
        for name in (
            "max_connections",
            "max_streams",
            "max_header_bytes",
            "write_buffer_bytes",
            "max_resets",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"Limits.{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything a server needs besides the app and its listeners.

    ``grace_period``: how long a graceful stop lets requests in flight finish before it
    cancels them.
    """

    limits: Limits = field(default_factory=Limits)
    grace_period: float = 5.0

    def __post_init__(self) -> None:
        if not (self.grace_period >= 0 and math.isfinite(self.grace_period)):
            raise ValueError(f"ServeConfig.grace_period must be >= 0, not {self.grace_period}")
