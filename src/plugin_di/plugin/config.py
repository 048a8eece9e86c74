"""How a plugin process serves: `PluginServeConfig`, and what it reads from its environment.

Without pydantic (a plugin process must start fast). The variable names match
`plugin_di.settings` (prefix ``PLUGIN_DI_``) and, for what a launching host sets,
`plugin_di.plugin.env`. `PluginServeConfig.resolved` is the one place a serving
configuration is completed from the environment.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plugin_di.plugin import env
from plugin_di.rpc.serving.config import Limits

if TYPE_CHECKING:
    from connectrpc.interceptor import Interceptor

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_SHUTDOWN_GRACE",
    "LIMIT_VARIABLES",
    "MAX_MESSAGE_BYTES",
    "SHUTDOWN_GRACE",
    "PluginConfigError",
    "PluginServeConfig",
    "check_cookie",
    "host_versions",
    "max_message_bytes",
    "parse_versions",
    "server_limits",
    "shutdown_grace",
]

MAX_MESSAGE_BYTES = "PLUGIN_DI_MAX_MESSAGE_BYTES"
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SHUTDOWN_GRACE = "PLUGIN_DI_SHUTDOWN_GRACE"
DEFAULT_SHUTDOWN_GRACE = 5.0
LIMIT_VARIABLES: dict[str, tuple[str, type]] = {
    "header_timeout": ("PLUGIN_DI_HEADER_TIMEOUT", float),
    "idle_timeout": ("PLUGIN_DI_IDLE_TIMEOUT", float),
    "max_connections": ("PLUGIN_DI_MAX_CONNECTIONS", int),
    "max_streams": ("PLUGIN_DI_MAX_STREAMS", int),
    "max_header_bytes": ("PLUGIN_DI_MAX_HEADER_BYTES", int),
}


class PluginConfigError(ValueError):
    """An environment variable holds something unusable."""


def max_message_bytes(environ: Mapping[str, str] = os.environ) -> int:
    """The request body limit: ``PLUGIN_DI_MAX_MESSAGE_BYTES``, default 4 MiB."""
    raw = environ.get(MAX_MESSAGE_BYTES, "").strip()
    if not raw:
        return DEFAULT_MAX_MESSAGE_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise PluginConfigError(
            f"{MAX_MESSAGE_BYTES}={raw!r} is not a positive number of bytes; "
            f"unset it for the default ({DEFAULT_MAX_MESSAGE_BYTES})"
        )
    return value


def shutdown_grace(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds in-flight calls get after a stop request: ``PLUGIN_DI_SHUTDOWN_GRACE``, default 5."""
    raw = environ.get(SHUTDOWN_GRACE, "").strip()
    if not raw:
        return DEFAULT_SHUTDOWN_GRACE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise PluginConfigError(
            f"{SHUTDOWN_GRACE}={raw!r} is not a number of seconds >= 0; "
            f"unset it for the default ({DEFAULT_SHUTDOWN_GRACE})"
        )
    return value


def server_limits(environ: Mapping[str, str] = os.environ) -> Limits:
    """The listener's limits: ``PLUGIN_DI_HEADER_TIMEOUT``, ``PLUGIN_DI_IDLE_TIMEOUT``,
    ``PLUGIN_DI_MAX_CONNECTIONS``, ``PLUGIN_DI_MAX_STREAMS`` and ``PLUGIN_DI_MAX_HEADER_BYTES``
    (see `plugin_di.rpc.serving.Limits` for the defaults)."""
    values: dict[str, Any] = {}
    for name, (variable, kind) in LIMIT_VARIABLES.items():
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        try:
            values[name] = kind(raw)
        except ValueError:
            raise PluginConfigError(f"{variable}={raw!r} is not a {kind.__name__}") from None
    try:
        return Limits(**values)
    except ValueError as exc:
        raise PluginConfigError(f"{exc}; check the PLUGIN_DI_ limit variables") from None


def parse_versions(text: str, *, name: str = env.PROTOCOL_VERSIONS) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``; an error names the variable and the bad value."""
    versions: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            versions.append(int(part))
        except ValueError:
            raise PluginConfigError(
                f"{name}={text!r}: {part!r} is not an integer protocol version"
            ) from None
    return versions


def host_versions(environ: Mapping[str, str] = os.environ) -> list[int] | None:
    """The app protocol versions a launching host offered, or None when not launched by one."""
    raw = environ.get(env.PROTOCOL_VERSIONS, "")
    return parse_versions(raw) or None if raw.strip() else None


def check_cookie(key: str, value: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """go-plugin's launch check: when the cookie variable is set it must match.

    Returns an error message, or None when all is well (unset means the plugin
    was started by hand, which is allowed).
    """
    found = environ.get(key)
    if found is None or found == value:
        return None
    return (
        f"this program is a plugin-di plugin, and the magic cookie it was started with "
        f"({key}) does not match: the host and the plugin disagree on the cookie value. "
        "Check the host's magic cookie configuration, or unset the variable to run it by hand."
    )


@dataclass(frozen=True, slots=True)
class PluginServeConfig:
    """How `plugin_di.plugin.server.serve` serves a plugin process.

    ``bind`` (``HOST:PORT``) or ``uds`` (a Unix socket path) is where it listens; with
    neither, ``127.0.0.1:0`` or a socket in the launching host's socket directory.
    ``tls_cert`` and ``tls_key`` (PEM files) go together. The magic cookie and
    ``app_protocol_versions`` are what the handshake checks and offers (None: the versions
    every served plugin declares); ``interceptors`` wrap every call; ``server_metadata``
    is sent in the handshake response. Fields left None (``grace_period``, ``limits``,
    ``max_message_bytes``) come from the environment: see `resolved`.
    """

    bind: str | None = None
    uds: str | os.PathLike[str] | None = None
    tls_cert: str | os.PathLike[str] | None = None
    tls_key: str | os.PathLike[str] | None = None
    magic_cookie_key: str = env.DEFAULT_MAGIC_COOKIE_KEY
    magic_cookie_value: str = env.DEFAULT_MAGIC_COOKIE_VALUE
    app_protocol_versions: Sequence[int] | None = None
    interceptors: Iterable[Interceptor] = ()
    grace_period: float | None = None
    server_metadata: Mapping[str, str] | None = None
    limits: Limits | None = None
    max_message_bytes: int | None = None

    def __post_init__(self) -> None:
        # Iterables a caller passes once (a generator) are kept as tuples.
        object.__setattr__(self, "interceptors", tuple(self.interceptors))
        if self.app_protocol_versions is not None:
            object.__setattr__(self, "app_protocol_versions", tuple(self.app_protocol_versions))
        if self.bind and self.uds:
            raise PluginConfigError("give either bind or uds, not both")
        if self.tls_cert is not None and self.tls_key is None:
            raise PluginConfigError("TLS needs both a certificate and a key file")
        grace = self.grace_period
        if grace is not None and not (grace >= 0 and math.isfinite(grace)):
            raise PluginConfigError(f"grace_period must be a number of seconds >= 0, not {grace}")
        size = self.max_message_bytes
        if size is not None and not (isinstance(size, int) and size > 0):
            raise PluginConfigError(f"max_message_bytes must be a positive integer, not {size!r}")

    @classmethod
    def of(cls, config: PluginServeConfig | None = None, **options: Any) -> PluginServeConfig:
        """``config`` with ``options`` (its field names, as keyword arguments) applied."""
        if config is None:
            return cls(**options)
        return dataclasses.replace(config, **options) if options else config

    def resolved(self, environ: Mapping[str, str] = os.environ) -> PluginServeConfig:
        """This configuration with every field left None read from ``environ``:
        `shutdown_grace`, `server_limits` and `max_message_bytes`."""
        return dataclasses.replace(
            self,
            grace_period=(
                shutdown_grace(environ) if self.grace_period is None else self.grace_period
            ),
            limits=server_limits(environ) if self.limits is None else self.limits,
            max_message_bytes=(
                max_message_bytes(environ)
                if self.max_message_bytes is None
                else self.max_message_bytes
            ),
        )
