"""Token validations and rate-limiter checks per second, single thread.

Targets from issue 6 (the figures connect-plugin-go's performance guide claims): at least
1,000,000 token validations/s and 500,000 limiter checks/s.

``measure_security()`` returns the numbers; ``python -m bench.security`` prints them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import Headers, RequestContext

from plugin_di.rpc.interceptors.auth import (
    RuntimeTokenAuthenticator,
    ServerAuth,
)
from plugin_di.rpc.interceptors.ratelimit import Rate, TokenBucketLimiter

TOKEN_TARGET = 1_000_000
LIMITER_TARGET = 500_000


@dataclass(frozen=True)
class SecurityBench:
    """Checks per second (median of the rounds)."""

    token_validations: float
    """``TokenStore.validate(runtime_id, token)``, the host's constant-time check"""
    token_auth_checks: float
    """the full server-side check: ``ServerAuth`` reading the headers and validating"""
    limiter_checks: float
    """``TokenBucketLimiter.allow`` on one hot key"""
    limiter_checks_many_keys: float
    """``allow`` cycling over 10,000 keys"""
    validator: str
    """which token store was measured"""


class _DictValidator:
    """Stand-in when the host's token store is absent: dict lookup + constant-time compare."""

    def __init__(self) -> None:
        import hmac

        self._tokens: dict[str, bytes] = {}
        self._compare = hmac.compare_digest

    def store(self, runtime_id: str, token: str) -> None:
        self._tokens[runtime_id] = token.encode()

    def validate(self, runtime_id: str, token: str) -> bool:
        expected = self._tokens.get(runtime_id)
        return expected is not None and self._compare(expected, token.encode())


def _validator() -> tuple[object, str, str, str]:
    try:
        from plugin_di.host.tokens import TokenStore
    except ImportError:
        fallback = _DictValidator()
        fallback.store("kv-1", "t" * 43)
        return fallback, "kv-1", "t" * 43, "in-memory dict (host.tokens missing)"
    store = TokenStore()
    ident = store.issue("kv")
    return store, ident.runtime_id, ident.token, "plugin_di.host.tokens.TokenStore"


def _rate(loop: Callable[[int], None], n: int, rounds: int) -> float:
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        loop(n)
        results.append(n / (time.perf_counter() - start))
    return statistics.median(results)


def measure_security(n: int = 300_000, rounds: int = 5) -> SecurityBench:
    """Measure every figure with ``n`` checks per round."""
    store, runtime_id, token, which = _validator()
    validate = store.validate  # type: ignore[attr-defined]

    def validations(count: int) -> None:
        for _ in range(count):
            validate(runtime_id, token)

    method: MethodInfo[object, object] = MethodInfo(
        name="Get",
        service_name="kv.v1.KVService",
        input=object,
        output=object,
        idempotency_level=IdempotencyLevel.NO_SIDE_EFFECTS,
        stream_type=StreamType.UNARY,
    )
    ctx: RequestContext[object, object] = RequestContext(
        method=method,
        http_method="POST",
        request_headers=Headers(
            {"authorization": "Bearer " + token, "x-plugin-runtime-id": runtime_id}
        ),
    )
    auth = ServerAuth(RuntimeTokenAuthenticator(store))  # type: ignore[arg-type]
    authenticate = auth.authenticate

    def auth_checks(count: int) -> None:
        for _ in range(count):
            authenticate(ctx)

    limiter = TokenBucketLimiter()
    allow = limiter.allow
    rate = Rate(1e12, 1_000_000)  # never empty: every check takes the full path

    def limiter_checks(count: int) -> None:
        for _ in range(count):
            allow("id:kv-1|*", rate)

    keys = [f"id:kv-{i}|*" for i in range(10_000)]

    def limiter_many(count: int) -> None:
        for i in range(count):
            allow(keys[i % 10_000], rate)

    return SecurityBench(
        token_validations=_rate(validations, n, rounds),
        token_auth_checks=_rate(auth_checks, n, rounds),
        limiter_checks=_rate(limiter_checks, n, rounds),
        limiter_checks_many_keys=_rate(limiter_many, n, rounds),
        validator=which,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args(argv)
    result = measure_security(n=50_000 if args.quick else 300_000, rounds=3 if args.quick else 5)
    rows = [
        ("token validations/s", result.token_validations, TOKEN_TARGET),
        ("server token auth checks/s", result.token_auth_checks, TOKEN_TARGET),
        ("rate-limiter checks/s", result.limiter_checks, LIMITER_TARGET),
        ("rate-limiter checks/s (10k keys)", result.limiter_checks_many_keys, LIMITER_TARGET),
    ]
    print(f"security benchmark, single thread (validator: {result.validator})")
    for label, value, target in rows:
        verdict = "" if target is None else (" ok" if value >= target else f" BELOW {target:,}")
        print(f"  {label:34} {value:>12,.0f}{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
