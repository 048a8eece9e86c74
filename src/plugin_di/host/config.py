"""The host's tunables (`HostConfig`), built once from `Settings`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from plugin_di.rpc.interceptors.ratelimit import Rate
from plugin_di.rpc.serving import Limits
from plugin_di.settings import Settings

__all__ = ["DEFAULT_RATE_LIMIT", "HostConfig"]

DEFAULT_RATE_LIMIT = Rate(1000.0, 2000)


@dataclass(frozen=True)
class HostConfig:
    """What a host is tuned by. Durations are seconds.

    ``rate_limit`` is the default rate per caller (host RPCs also get connect-plugin-go's
    per-method rates on top); None turns limiting off. ``limits`` are the listeners' header,
    idle and connection limits. ``sweep_interval``: how often expired tokens and grants are
    purged. ``grace_period``: how long a stop lets calls in flight finish.
    """

    runtime_token_ttl: float = 24 * 3600.0
    capability_grant_ttl: float = 3600.0
    app_versions: tuple[int, ...] = (1,)
    max_message_bytes: int = 4 * 1024 * 1024
    sweep_interval: float = 60.0
    rate_limit: Rate | None = DEFAULT_RATE_LIMIT
    limits: Limits = field(default_factory=Limits)
    grace_period: float = 2.0

    def __post_init__(self) -> None:
        for name in ("runtime_token_ttl", "capability_grant_ttl", "sweep_interval"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"HostConfig.{name} must be positive, not {value}")
        if not (self.grace_period >= 0 and math.isfinite(self.grace_period)):
            raise ValueError(f"HostConfig.grace_period must be >= 0, not {self.grace_period}")
        if self.max_message_bytes <= 0:
            raise ValueError(
                f"HostConfig.max_message_bytes must be positive, not {self.max_message_bytes}"
            )
        if not self.app_versions or any(v <= 0 for v in self.app_versions):
            raise ValueError(f"HostConfig.app_versions must be positive: {self.app_versions}")

    @classmethod
    def from_settings(cls, settings: Settings) -> HostConfig:
        """The configuration ``Settings`` name (RUNTIME_TOKEN_TTL, CAPABILITY_GRANT_TTL,
        MAX_MESSAGE_BYTES, RATE_LIMIT_RPS/BURST, the listener limits)."""
        return cls(
            runtime_token_ttl=settings.runtime_token_ttl,
            capability_grant_ttl=settings.capability_grant_ttl,
            max_message_bytes=settings.max_message_bytes,
            rate_limit=Rate(settings.rate_limit_rps, settings.rate_limit_burst),
            limits=settings.limits(),
        )
