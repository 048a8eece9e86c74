"""What a plugin process reads from its environment, without pydantic (it must start fast).

The names match `plugin_di.settings` (prefix ``PLUGIN_DI_``) and, for what a
launching host sets, `plugin_di.plugin.env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from plugin_di.plugin import env
from plugin_di.rpc.serving.config import Limits

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
