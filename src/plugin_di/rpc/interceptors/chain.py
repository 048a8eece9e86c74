"""One plugin's interceptor configuration, producing its client and server interceptor lists.

Client order, outermost first (the call passes them in this order, the response in reverse):

0. telemetry (`plugin_di.rpc.telemetry`, when installed): one span per logical call;
1. ``client_extra``: the user's interceptors (logging, metrics) see each logical call once;
2. ``ClientAuth`` / ``BearerClient``: credentials are stamped once per logical call;
3. ``CircuitBreakerInterceptor`` (one breaker per endpoint): an open circuit fails fast
   before any retry, and a call that used up its retries counts as one failure;
4. ``RetryInterceptor``: retries the network call itself.

Server order, outermost first; all built-in ones are metadata interceptors, so they run
before the request body is read:

0. telemetry (when installed): a server span for every call, refused ones included;
1. ``HeaderLimits``: malformed or oversized headers are rejected before anything else;
2. ``ServerAuth``: unauthenticated calls are rejected cheaply and never touch a bucket;
3. ``RateLimitInterceptor``: keyed by the identity auth established (else the peer IP);
4. ``server_extra``: the user's interceptors, then the handler.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc.interceptors.auth import (
    Authenticator,
    ServerAuth,
)
from plugin_di.rpc.interceptors.breaker import (
    BreakerConfig,
    CircuitBreaker,
    CircuitBreakerInterceptor,
    CircuitState,
)
from plugin_di.rpc.interceptors.credentials import (
    BearerClient,
    ClientAuth,
    CredentialsSource,
)
from plugin_di.rpc.interceptors.guard import check_interceptors
from plugin_di.rpc.interceptors.limits import HeaderLimits
from plugin_di.rpc.interceptors.ratelimit import (
    RateLimitInterceptor,
    RateLimitPolicy,
    TokenBucketLimiter,
)
from plugin_di.rpc.interceptors.retry import RetryInterceptor, RetryPolicy
from plugin_di.rpc.telemetry import current as current_telemetry

__all__ = ["BreakerStateChange", "InterceptorChain"]

BreakerStateChange = Callable[[str, CircuitState, CircuitState], None]
"""``(endpoint, old, new)``: a breaker of the chain changed state."""


@dataclass
class InterceptorChain:
    """A plugin's interceptor settings; see the module docstring for the order.

    Client side: ``credentials`` (runtime identity, may be set later) and/or
    ``bearer_token`` (a capability grant's token or a user's key), ``retry`` and
    ``breaker`` (None turns them off). Server side: ``authenticators`` (none: no auth),
    ``public`` procedures that skip auth, ``rate_limit`` (None: unlimited).
    ``sync=True`` builds lists for sync clients and WSGI servers (retries there block in
    ``sleep_sync``). Extra interceptors are
    checked when the chain is built: ``TypeError`` for one connectrpc would silently ignore.
    """

    clock: Clock = SYSTEM_CLOCK
    sync: bool = False
    # client side
    credentials: CredentialsSource | None = None
    bearer_token: str | Callable[[], str | None] | None = None
    bearer_header: str = "authorization"
    bearer_prefix: str = "Bearer "
    retry: RetryPolicy | None = field(default_factory=RetryPolicy)
    breaker: BreakerConfig | None = field(default_factory=BreakerConfig)
    on_breaker_state_change: BreakerStateChange | None = None
    allow_insecure_credentials: bool = False
    client_extra: Sequence[object] = ()
    random: Callable[[], float] = random.random
    sleep_sync: Callable[[float], None] = time.sleep
    # server side
    authenticators: Sequence[Authenticator] = ()
    auth_mode: Literal["any", "all"] = "any"
    public: Sequence[str] = ()
    rate_limit: RateLimitPolicy | None = None
    limiter: TokenBucketLimiter | None = None
    header_limits: HeaderLimits | None = field(default_factory=HeaderLimits)
    server_extra: Sequence[object] = ()
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.client_extra = check_interceptors(self.client_extra, sync=self.sync)
        self.server_extra = check_interceptors(self.server_extra, sync=self.sync)
        if self.rate_limit is not None and self.limiter is None:
            self.limiter = TokenBucketLimiter(self.clock)

    @property
    def breakers(self) -> Mapping[str, CircuitBreaker]:
        """The breakers made so far, by endpoint (health reports DEGRADED while one is open)."""
        return dict(self._breakers)

    def breaker_for(self, endpoint: str) -> CircuitBreaker | None:
        """The endpoint's breaker, made on first use; None when breakers are off."""
        if self.breaker is None:
            return None
        found = self._breakers.get(endpoint)
        if found is None:
            callback = self.on_breaker_state_change

            def notify(old: CircuitState, new: CircuitState) -> None:
                if callback is not None:
                    callback(endpoint, old, new)

            found = CircuitBreaker(
                self.breaker, clock=self.clock, name=endpoint, on_state_change=notify
            )
            self._breakers[endpoint] = found
        return found

    def client_interceptors(self, endpoint: str) -> list[Any]:
        """The interceptors for a client of ``endpoint`` (its base URL), outermost first.

        Raises ``plugin_di.rpc.tls.InsecureTransportError`` when credentials would go in
        plaintext to a non-loopback address (unless ``allow_insecure_credentials``).
        """
        sends_credentials = self.credentials is not None or self.bearer_token is not None
        if endpoint.startswith("http://"):
            from plugin_di.rpc.tls import check_plaintext  # loads cryptography only when needed

            check_plaintext(
                endpoint,
                sends_credentials=sends_credentials,
                allow_insecure=self.allow_insecure_credentials,
            )
        telemetry = current_telemetry()
        result: list[Any] = [*(telemetry.client_interceptors() if telemetry else ()),
                             *self.client_extra]  # fmt: skip
        if self.credentials is not None:
            result.append(ClientAuth(self.credentials))
        if self.bearer_token is not None:
            result.append(
                BearerClient(
                    self.bearer_token, header=self.bearer_header, prefix=self.bearer_prefix
                )
            )
        breaker = self.breaker_for(endpoint)
        if breaker is not None:
            result.append(CircuitBreakerInterceptor(breaker))
        if self.retry is not None:
            result.append(
                RetryInterceptor(
                    self.retry, clock=self.clock, random=self.random, sleep_sync=self.sleep_sync
                )
            )
        return check_interceptors(result, sync=self.sync)

    def server_interceptors(self) -> list[Any]:
        """The interceptors for this plugin's servers (or the host's), outermost first."""
        telemetry = current_telemetry()
        result: list[Any] = list(telemetry.server_interceptors() if telemetry else ())
        if self.header_limits is not None:
            result.append(self.header_limits)
        if self.authenticators:
            result.append(ServerAuth(*self.authenticators, mode=self.auth_mode, public=self.public))
        if self.rate_limit is not None:
            result.append(RateLimitInterceptor(self.rate_limit, self.limiter, clock=self.clock))
        result.extend(self.server_extra)
        return check_interceptors(result, sync=self.sync)
