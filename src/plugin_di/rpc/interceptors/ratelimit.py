"""Token-bucket rate limiting per caller, with a retry-after hint on rejection.

``TokenBucketLimiter.allow(key, rate)`` is the hot path (about a microsecond): a bucket per
key starts full with ``burst`` tokens and refills at ``rps`` per second; a call takes one.
Buckets idle for ``idle_ttl`` (5 min) are evicted by a sweep that ``allow`` runs at most once
per ``sweep_interval``; there is no background task to stop.

``RateLimitInterceptor`` is a server metadata interceptor (it runs before the request body is
read). The caller's key is the identity ``ServerAuth`` established (so put it after auth),
else the peer's IP address. Rates come from a ``RateLimitPolicy``: per method, per service,
else the default (the host passes Settings RATE_LIMIT_RPS / RATE_LIMIT_BURST). Each rule has
its own buckets. A rejected call gets RESOURCE_EXHAUSTED with the wait in two forms:

- an error detail ``google.rpc.RetryInfo`` (``retry_delay``), which survives all three
  protocols; ``retry_after_of(error)`` reads it back (the retry interceptor uses it);
- a ``retry-after`` response header in whole seconds, rounded up, for plain HTTP clients.

Why not limits or aiolimiter, and why RetryInfo comes from googleapis-common-protos:
docs/dependencies.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.request import RequestContext
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc.error_details_pb2 import RetryInfo
from protobuf.wkt import Any as AnyMessage

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc.before_call import BeforeCall
from plugin_di.rpc.interceptors.auth import current_identity

__all__ = [
    "HOST_METHOD_RATES",
    "RETRY_AFTER_HEADER",
    "RETRY_INFO_TYPE",
    "Rate",
    "RateLimitInterceptor",
    "RateLimitPolicy",
    "TokenBucketLimiter",
    "default_rate_limit_key",
    "host_rate_limits",
    "retry_after_detail",
    "retry_after_of",
]

RETRY_AFTER_HEADER = "retry-after"
RETRY_INFO_TYPE: str = RetryInfo.DESCRIPTOR.full_name
_TYPE_URL_PREFIX = "type.googleapis.com/"


@dataclass(frozen=True, slots=True)
class Rate:
    """``rps`` tokens per second, at most ``burst`` saved up. Burst 0 allows nothing."""

    rps: float
    burst: int

    def __post_init__(self) -> None:
        if self.rps < 0 or self.burst < 0:
            raise ValueError(f"rate limit needs rps >= 0 and burst >= 0, got {self}")


class TokenBucketLimiter:
    """Token buckets keyed by string; time from an injectable ``Clock``.

    There is no lock, to keep ``allow`` lean: on one event loop it is exact; called from
    several threads at once (a threaded WSGI server) a race can at worst grant an extra token.
    """

    def __init__(
        self,
        clock: Clock = SYSTEM_CLOCK,
        *,
        idle_ttl: float = 300.0,
        sweep_interval: float = 60.0,
    ) -> None:
        self._now = clock.now
        self._idle_ttl = idle_ttl
        self._sweep_interval = sweep_interval
        # key -> [tokens, last refill time]; lists are cheaper to update than objects.
        self._buckets: dict[str, list[float]] = {}
        self._next_sweep = clock.now() + sweep_interval

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, rate: Rate) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty."""
        now = self._now()
        bucket = self._buckets.get(key)
        if bucket is None:
            if now >= self._next_sweep:
                self._sweep(now)
            if rate.burst < 1:
                return False
            self._buckets[key] = [rate.burst - 1.0, now]
            return True
        tokens = bucket[0] + (now - bucket[1]) * rate.rps
        if tokens > rate.burst:
            tokens = rate.burst
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False

    def retry_after(self, key: str, rate: Rate) -> float:
        """Seconds until ``key`` has a token again (``inf`` if it never will)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0 if rate.burst >= 1 else math.inf
        tokens = min(rate.burst, bucket[0] + (self._now() - bucket[1]) * rate.rps)
        if tokens >= 1.0:
            return 0.0
        if rate.rps <= 0 or rate.burst < 1:
            return math.inf
        return (1.0 - tokens) / rate.rps

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self._sweep_interval
        cutoff = now - self._idle_ttl
        stale = [k for k, b in self._buckets.items() if b[1] <= cutoff]
        for key in stale:
            del self._buckets[key]

    def sweep(self) -> int:
        """Evict buckets idle for ``idle_ttl`` now; returns how many were evicted."""
        before = len(self._buckets)
        self._sweep(self._now())
        return before - len(self._buckets)


@dataclass(frozen=True)
class RateLimitPolicy:
    """Which rate applies: ``methods["/pkg.Service/Method"]``, else ``services["pkg.Service"]``,
    else ``default``. A None default leaves unlisted calls unlimited."""

    default: Rate | None
    services: Mapping[str, Rate] = field(default_factory=dict)
    methods: Mapping[str, Rate] = field(default_factory=dict)

    def rule_for(self, service: str, method: str) -> tuple[str, Rate] | None:
        """The matching rule's name (the bucket scope) and its rate."""
        procedure = f"/{service}/{method}"
        rate = self.methods.get(procedure)
        if rate is not None:
            return procedure, rate
        rate = self.services.get(service)
        if rate is not None:
            return service, rate
        if self.default is not None:
            return "*", self.default
        return None


HOST_METHOD_RATES: Mapping[str, Rate] = {
    "/connectplugin.v1.HandshakeService/Handshake": Rate(10, 20),
    "/connectplugin.v1.ServiceRegistry/RegisterService": Rate(1, 5),
    "/connectplugin.v1.ServiceRegistry/UnregisterService": Rate(1, 5),
    "/connectplugin.v1.ServiceRegistry/DiscoverService": Rate(100, 200),
    "/connectplugin.v1.ServiceRegistry/WatchService": Rate(1, 3),
    "/connectplugin.v1.CapabilityBroker/RequestCapability": Rate(10, 20),
}
"""Per-method rates connect-plugin-go designed for the host's RPCs (never applied there).

Register's burst of 5 limits a plugin to 5 registrations at once; raise it for plugins that
provide more services.
"""


def host_rate_limits(default: Rate, **overrides: Rate) -> RateLimitPolicy:
    """The host's policy: ``HOST_METHOD_RATES`` over ``default`` (Settings RATE_LIMIT_RPS /
    RATE_LIMIT_BURST); ``overrides`` replace a method's rate by its name, e.g.
    ``RegisterService=Rate(5, 20)``."""
    methods = dict(HOST_METHOD_RATES)
    for name, rate in overrides.items():
        matches = [p for p in methods if p.rsplit("/", 1)[1] == name]
        if not matches:
            known = ", ".join(sorted(p.rsplit("/", 1)[1] for p in HOST_METHOD_RATES))
            raise ValueError(f"host_rate_limits: unknown method {name!r}; known: {known}")
        for procedure in matches:
            methods[procedure] = rate
    return RateLimitPolicy(default, methods=methods)


def default_rate_limit_key(ctx: RequestContext[Any, Any]) -> str:
    """The authenticated identity, else the peer IP (without port: one bucket per host)."""
    identity = current_identity()
    if identity is not None:
        return "id:" + identity.identity
    address = ctx.client_address
    if not address:
        return "ip:unknown"
    # connectrpc writes "host:port" (IPv6 hosts unbracketed): drop the port.
    return "ip:" + address.rsplit(":", 1)[0].strip("[]")


def retry_after_detail(seconds: float) -> ErrorDetail:
    """A ``google.rpc.RetryInfo`` error detail saying "retry after ``seconds``"."""
    whole = math.floor(seconds)
    nanos = min(999_999_999, round((seconds - whole) * 1e9))
    info = RetryInfo(retry_delay=Duration(seconds=whole, nanos=nanos))
    # connectrpc's details are protobuf-py messages: the google message travels packed.
    return ErrorDetail(
        AnyMessage(type_url=_TYPE_URL_PREFIX + RETRY_INFO_TYPE, value=info.SerializeToString())
    )


def retry_after_of(error: ConnectError) -> float | None:
    """The retry delay a ``google.rpc.RetryInfo`` detail of ``error`` carries, if any."""
    for detail in error.details:
        if detail.type_name == RETRY_INFO_TYPE:
            try:
                delay = RetryInfo.FromString(detail.message_bytes).retry_delay
            except DecodeError:  # a malformed detail is no hint
                return None
            return delay.seconds + delay.nanos / 1e9
    return None


class RateLimitInterceptor(BeforeCall):
    """Server metadata interceptor enforcing ``policy`` with ``limiter`` (sync twins included)."""

    def __init__(
        self,
        policy: RateLimitPolicy,
        limiter: TokenBucketLimiter | None = None,
        *,
        key: Callable[[RequestContext[Any, Any]], str] = default_rate_limit_key,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.policy = policy
        self.limiter = limiter if limiter is not None else TokenBucketLimiter(clock)
        self._key = key

    def before(self, ctx: RequestContext[Any, Any]) -> None:
        """Take a token for this call, or raise RESOURCE_EXHAUSTED with a retry-after hint."""
        rule = self.policy.rule_for(ctx.method.service_name, ctx.method.name)
        if rule is None:
            return
        scope, rate = rule
        bucket = f"{self._key(ctx)}|{scope}"
        if self.limiter.allow(bucket, rate):
            return
        wait = self.limiter.retry_after(bucket, rate)
        if math.isinf(wait):
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED, f"rate limit for {scope} allows no calls (burst 0)"
            )
        ctx.response_headers[RETRY_AFTER_HEADER] = str(max(1, math.ceil(wait)))
        raise ConnectError(
            Code.RESOURCE_EXHAUSTED,
            f"rate limit exceeded for {scope}: {rate.rps:g}/s, burst {rate.burst}; "
            f"retry after {wait:.3f}s",
            [retry_after_detail(wait)],
        )
