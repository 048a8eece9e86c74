"""The plugin process's own server chain: launcher authentication, rate limit, automatic mTLS.

`ServerSecurity.from_environ` reads what the launching host passed:

- ``PLUGIN_DI_REQUIRE_AUTH=1`` with ``PLUGIN_DI_LAUNCH_SECRET``: callers of the plugin's
  services, PluginControl and PluginIdentity must send ``Authorization: Bearer <secret>``
  (the launcher's clients do; see `plugin_di.launch.process_handle`). Handshake, both health
  services and reflection stay public, as do ``/healthz`` and ``/readyz``. The secret alone
  does not turn this on, so a plugin started by a bare `PluginProcess` (tests, tools) stays
  open to its starter's clients.
- ``PLUGIN_DI_RATE_LIMIT_RPS`` / ``PLUGIN_DI_RATE_LIMIT_BURST``: a token bucket per caller
  (identity, else peer IP) over every non-public procedure; RESOURCE_EXHAUSTED with a
  retry-after hint when empty. Unset: no limit (a plugin serving its own host at full speed
  should not be capped by a default); one set alone takes the other from the host's defaults
  (1000/s, burst 2000, as ``Settings``).
- ``PLUGIN_CLIENT_CERT``: automatic mTLS (`plugin_di.plugin.automtls`).

A plugin starts fast: the launch-secret check is a lean interceptor of its own, and
``plugin_di.rpc.interceptors`` (about 15 ms to import) loads only when a rate limit is set.
"""

from __future__ import annotations

import hmac
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.plugin import env
from plugin_di.plugin.automtls import AutoMTLS
from plugin_di.plugin.config import PluginConfigError
from plugin_di.rpc.before_call import BeforeCall

if TYPE_CHECKING:
    from plugin_di.rpc.interceptors import Rate, RateLimitPolicy

__all__ = [
    "DEFAULT_RATE_LIMIT_BURST",
    "DEFAULT_RATE_LIMIT_RPS",
    "LaunchSecretAuth",
    "PUBLIC_SERVICES",
    "RATE_LIMIT_BURST",
    "RATE_LIMIT_RPS",
    "REQUIRE_AUTH",
    "ServerSecurity",
    "rate_from_environ",
]

REQUIRE_AUTH = "PLUGIN_DI_REQUIRE_AUTH"
"""``1``: callers must present the launch secret (set by `ProcessPlugin`'s launcher)."""
RATE_LIMIT_RPS = "PLUGIN_DI_RATE_LIMIT_RPS"
RATE_LIMIT_BURST = "PLUGIN_DI_RATE_LIMIT_BURST"
DEFAULT_RATE_LIMIT_RPS = 1000.0
DEFAULT_RATE_LIMIT_BURST = 2000

PUBLIC_SERVICES = (
    "connectplugin.v1.HandshakeService",
    "connectplugin.health.v1.HealthService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
)
"""Services anyone may call: discovering and probing a plugin needs no secret."""


class LaunchSecretAuth(BeforeCall):
    """Server metadata interceptor: ``Authorization: Bearer <secret>`` (constant-time compare)
    on every procedure outside ``public``; else UNAUTHENTICATED with a fixed message."""

    def __init__(self, secret: str, public: tuple[str, ...] = PUBLIC_SERVICES) -> None:
        if not secret:
            raise ValueError("LaunchSecretAuth needs a non-empty secret")
        self._expected = ("Bearer " + secret).encode()
        self._public = frozenset(public)

    def before(self, ctx: RequestContext[Any, Any]) -> None:
        """Pass a public procedure or a caller with the secret; raise UNAUTHENTICATED."""
        if ctx.method.service_name in self._public:
            return
        sent = ctx.request_headers.get("authorization")
        if not sent:
            raise ConnectError(
                Code.UNAUTHENTICATED,
                "missing authorization header: this plugin only serves the host that launched it",
            )
        if not hmac.compare_digest(sent.encode(), self._expected):
            raise ConnectError(Code.UNAUTHENTICATED, "invalid launch credentials")


def _number(environ: Mapping[str, str], name: str, default: float, *, whole: bool) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(int(raw)) if whole else float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value != value or value == float("inf"):
        kind = "a whole number" if whole else "a number"
        raise PluginConfigError(
            f"{name}={raw!r} is not {kind} >= 0; unset it for no rate limit "
            f"(or the default {default:g} when the other one is set)"
        )
    return value


def rate_from_environ(environ: Mapping[str, str]) -> Rate | None:
    """The default rate from ``PLUGIN_DI_RATE_LIMIT_RPS`` / ``_BURST``; None when neither is set."""
    if (
        not environ.get(RATE_LIMIT_RPS, "").strip()
        and not environ.get(RATE_LIMIT_BURST, "").strip()
    ):
        return None
    from plugin_di.rpc.interceptors import Rate

    rps = _number(environ, RATE_LIMIT_RPS, DEFAULT_RATE_LIMIT_RPS, whole=False)
    burst = _number(environ, RATE_LIMIT_BURST, DEFAULT_RATE_LIMIT_BURST, whole=True)
    return Rate(rps, int(burst))


@dataclass(frozen=True)
class ServerSecurity:
    """What a plugin process enforces: server ``interceptors`` (auth, then rate limit) and,
    with automatic mTLS, the pinned ``ssl_context`` and the certificate for the handshake."""

    interceptors: list[Any] = field(default_factory=list)
    mtls: AutoMTLS | None = None

    @property
    def tls(self) -> bool:
        """Whether the plugin serves TLS because of automatic mTLS."""
        return self.mtls is not None

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return None if self.mtls is None else self.mtls.ssl_context

    @property
    def cert_der(self) -> bytes:
        """The certificate the handshake line carries (empty without automatic mTLS)."""
        return b"" if self.mtls is None else self.mtls.cert_der

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        own_tls: bool = False,
    ) -> ServerSecurity:
        """Read the launcher's settings; ``own_tls``: the plugin serves its own certificate
        files, so automatic mTLS is not applied. Raises `PluginConfigError` on bad values."""
        environ = os.environ if environ is None else environ
        interceptors: list[Any] = []
        if environ.get(REQUIRE_AUTH, "").strip() == "1":
            secret = environ.get(env.LAUNCH_SECRET, "")
            if not secret:
                raise PluginConfigError(
                    f"{REQUIRE_AUTH}=1 but {env.LAUNCH_SECRET} is empty: the launcher must "
                    "pass the per-launch secret"
                )
            interceptors.append(LaunchSecretAuth(secret))
        rate = rate_from_environ(environ)
        if rate is not None:
            from plugin_di.rpc.interceptors import RateLimitInterceptor, TokenBucketLimiter

            policy = _except_public(rate)
            interceptors.append(RateLimitInterceptor(policy, TokenBucketLimiter(clock)))
        mtls = None if own_tls else AutoMTLS.from_environ(environ)
        return cls(interceptors, mtls)


def _except_public(rate: Rate) -> RateLimitPolicy:
    """The default rate for every procedure but the public ones (probes are never limited)."""
    from plugin_di.rpc.interceptors import RateLimitPolicy

    class ExceptPublic(RateLimitPolicy):
        def rule_for(self, service: str, method: str) -> tuple[str, Rate] | None:
            if service in PUBLIC_SERVICES:
                return None
            return super().rule_for(service, method)

    return ExceptPublic(rate)
