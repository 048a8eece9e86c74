"""Process-wide settings, read from the environment with the prefix ``PLUGIN_DI_``.

Durations are in seconds. ``Settings()`` reads the environment each time it is
built; pass an instance explicitly where a test needs other values.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from plugin_di.rpc.serving.config import Limits

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Every tunable of plugin-di, with its default."""

    model_config = SettingsConfigDict(env_prefix="PLUGIN_DI_", extra="ignore")

    # lifecycle engine
    start_timeout: float = Field(
        default=15.0, gt=0, description="seconds all start hooks of an app may take together"
    )
    stop_timeout: float = Field(
        default=15.0, gt=0, description="seconds all stop hooks of an app may take together"
    )
    hook_timeout: float = Field(
        default=15.0, gt=0, description="seconds one start or stop hook may take"
    )
    log_level: str = Field(
        default="INFO",
        description="level of the lifecycle events logged by App.run and plugin-di run "
        "(DEBUG, INFO, WARNING, ERROR)",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: one line per event; json: one JSON object per line"
    )
    progress_interval: float = Field(
        default=5.0,
        ge=0,
        description="while start or stop hooks run, log what is pending this often (0: never)",
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description="loop of App.run and the CLI; auto: uvloop when installed",
    )

    # plugins
    max_message_bytes: int = Field(
        default=4 * MiB, gt=0, description="largest request body a server accepts, in bytes"
    )
    plugin_start_timeout: float = Field(
        default=15.0, gt=0, description="seconds a process plugin has to print its handshake line"
    )
    shutdown_grace: float = Field(
        default=5.0, ge=0, description="seconds in-flight calls may run after a stop request"
    )
    zygote: bool = Field(
        default=True,
        description="an App forks its 'python -m' process plugins from one warm zygote "
        "(PLUGIN_DI_ZYGOTE=0: spawn each)",
    )
    otel: bool = Field(
        default=False,
        description="trace and measure with OpenTelemetry (plugin-di[otel]; exporters from the "
        "OTEL_* variables): plugin processes, 'plugin-di host' and 'plugin-di run' read it; "
        "plugins an instrumented app launches get it",
    )

    # every listener (plugin_di.rpc.serving.Limits)
    header_timeout: float = Field(
        default=10.0, gt=0, description="seconds a request head (or TLS handshake) has to arrive"
    )
    idle_timeout: float = Field(
        default=20.0, gt=0, description="seconds before an idle or stalled connection is closed"
    )
    max_connections: int = Field(default=1024, gt=0, description="open connections per listener")
    max_streams: int = Field(default=100, gt=0, description="HTTP/2 streams per connection")
    max_header_bytes: int = Field(
        default=64 * 1024, gt=0, description="largest request head (line and headers), in bytes"
    )

    # host platform
    runtime_token_ttl: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="seconds a plugin's runtime token (its identity on the host) stays valid",
    )
    capability_grant_ttl: float = Field(
        default=3600.0, gt=0, description="seconds a capability grant stays valid"
    )
    rate_limit_rps: float = Field(
        default=1000.0,
        gt=0,
        description="requests per second each caller may make to a host; a served plugin "
        "limits its callers only when this or PLUGIN_DI_RATE_LIMIT_BURST is set",
    )
    rate_limit_burst: int = Field(
        default=2000, gt=0, description="requests a caller may make at once above the rate"
    )

    # where the host platform keeps its state (docs/deploy.md)
    store: str = Field(
        default="memory://",
        description="memory:// (one host, nothing to install) or redis://HOST:PORT/DB "
        "(several hosts sharing one platform)",
    )
    lease_ttl: float = Field(
        default=30.0,
        gt=0,
        description="on a shared store: seconds a plugin stays registered after its last heartbeat",
    )
    store_sync_interval: float = Field(
        default=0.05,
        gt=0,
        description="on a shared store: seconds between a host's rate-limit count syncs",
    )

    # admission: who may join the host platform (docs/security.md#admission)
    admission_key_file: Path | None = Field(
        default=None,
        description="key file that signs and verifies join tokens (plugin-di join-token)",
    )
    admission_allow: str = Field(
        default="",
        description="SELF_ID=TYPE[,TYPE] entries admitted with no credential, separated by "
        "';' or spaces (for peers that cannot send a join token)",
    )
    admission_allow_cert: str = Field(
        default="",
        description="NAME=TYPE[,TYPE] entries: client certificate names admitted (needs "
        "PLUGIN_DI_ADMISSION_CLIENT_CA and a host serving TLS)",
    )
    admission_client_ca: Path | None = Field(
        default=None, description="PEM CA that signs the client certificates the host admits"
    )
    open_registration: bool = Field(
        default=False, description="admit anyone to register anything (development only)"
    )

    def limits(self) -> Limits:
        """The listener limits these settings name."""
        from plugin_di.rpc.serving.config import Limits

        return Limits(
            header_timeout=self.header_timeout,
            idle_timeout=self.idle_timeout,
            max_connections=self.max_connections,
            max_streams=self.max_streams,
            max_header_bytes=self.max_header_bytes,
        )
