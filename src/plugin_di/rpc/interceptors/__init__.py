"""Client and server interceptors for connectrpc: auth, rate limiting, retry, circuit breaker.

``InterceptorChain`` holds one plugin's settings and builds its ordered client and server
interceptor lists (the order is documented in ``chain``). Every interceptor here is a plain
object with connectrpc's method names; most carry ``*_sync`` twins for sync stacks.
"""

from plugin_di.rpc.interceptors.auth import (
    Authenticator,
    AuthIdentity,
    BearerAuthenticator,
    MTLSAuthenticator,
    RuntimeTokenAuthenticator,
    ServerAuth,
    TokenValidator,
    api_key_authenticator,
    current_identity,
    require_identity,
)
from plugin_di.rpc.interceptors.breaker import (
    BreakerConfig,
    CircuitBreaker,
    CircuitBreakerInterceptor,
    CircuitState,
)
from plugin_di.rpc.interceptors.chain import InterceptorChain
from plugin_di.rpc.interceptors.credentials import (
    BearerClient,
    ClientAuth,
    Credentials,
    CredentialsSource,
    RuntimeCredentials,
    api_key_client,
)
from plugin_di.rpc.interceptors.guard import check_interceptors
from plugin_di.rpc.interceptors.limits import HeaderLimits
from plugin_di.rpc.interceptors.ratelimit import (
    Rate,
    RateLimitInterceptor,
    RateLimitPolicy,
    TokenBucketLimiter,
    host_rate_limits,
    retry_after_of,
)
from plugin_di.rpc.interceptors.retry import RetryInterceptor, RetryPolicy

__all__ = [
    "AuthIdentity",
    "Authenticator",
    "BearerAuthenticator",
    "BearerClient",
    "BreakerConfig",
    "CircuitBreaker",
    "CircuitBreakerInterceptor",
    "CircuitState",
    "ClientAuth",
    "Credentials",
    "CredentialsSource",
    "HeaderLimits",
    "InterceptorChain",
    "MTLSAuthenticator",
    "Rate",
    "RateLimitInterceptor",
    "RateLimitPolicy",
    "RetryInterceptor",
    "RetryPolicy",
    "RuntimeCredentials",
    "RuntimeTokenAuthenticator",
    "ServerAuth",
    "TokenBucketLimiter",
    "TokenValidator",
    "api_key_authenticator",
    "api_key_client",
    "check_interceptors",
    "current_identity",
    "host_rate_limits",
    "require_identity",
    "retry_after_of",
]
