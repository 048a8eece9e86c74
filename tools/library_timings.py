"""Per-call cost of plugin-di's retry, breaker, token bucket and semver code next to libraries.

The figures behind docs/dependencies.md. Not a test and not part of `make bench`: the libraries
it compares with are not dependencies of plugin-di, so install them first::

    .venv/bin/pip install tenacity stamina purgatory pybreaker limits aiolimiter semver
    .venv/bin/python tools/library_timings.py

Each figure is the best of five timeit rounds, in microseconds per call, of the path a call
takes when nothing fails (the hot path of an interceptor).
"""

from __future__ import annotations

import asyncio
import sys
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.rpc...support

ROUNDS = 5


def best_us(statement: Callable[[], object], number: int) -> float:
    """Microseconds per call, best of ROUNDS."""
    return min(timeit.repeat(statement, number=number, repeat=ROUNDS)) / number * 1e6


def best_async_us(make: Callable[[], Awaitable[object]], number: int) -> float:
    """Microseconds per awaited call (the loop is entered once per round)."""
    loop = asyncio.new_event_loop()

    async def run() -> None:
        for _ in range(number):
            await make()

    try:
        return (
            min(timeit.repeat(lambda: loop.run_until_complete(run()), number=1, repeat=ROUNDS))
            / (number)
            * 1e6
        )
    finally:
        loop.close()


async def _ok(*_: Any) -> str:
    return "ok"


def _ok_sync(*_: Any) -> str:
    return "ok"


def retry() -> dict[str, float]:
    import stamina
    import tenacity
    from tenacity.asyncio import AsyncRetrying

    from plugin_di.rpc.interceptors.retry import RetryInterceptor
    from tests.rpc.interceptors.support import make_ctx

    ctx = make_ctx()
    ours = RetryInterceptor()

    async def tenacity_call() -> object:
        async for attempt in AsyncRetrying(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_random_exponential(0.1, 10.0),
            reraise=True,
        ):
            with attempt:
                return await _ok()
        return None

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_random_exponential(0.1, 10.0),
        reraise=True,
    )
    async def tenacity_decorated() -> object:
        return await _ok()

    async def stamina_call() -> object:
        async for attempt in stamina.retry_context(on=ValueError, attempts=3):
            with attempt:
                return await _ok()
        return None

    n = 20_000
    return {
        "plugin-di RetryInterceptor.intercept_unary": best_async_us(
            lambda: ours.intercept_unary(_ok, None, ctx), n
        ),
        "tenacity AsyncRetrying (async for)": best_async_us(tenacity_call, n),
        "tenacity @retry-decorated coroutine": best_async_us(tenacity_decorated, n),
        "stamina retry_context (async for)": best_async_us(stamina_call, n),
        "bare await (the call itself)": best_async_us(_ok, n),
    }


def breaker() -> dict[str, float]:
    import pybreaker
    from purgatory import AsyncCircuitBreakerFactory, SyncCircuitBreakerFactory

    from plugin_di.rpc.interceptors.breaker import CircuitBreaker, CircuitBreakerInterceptor
    from tests.rpc.interceptors.support import make_ctx

    ctx = make_ctx()
    ours = CircuitBreakerInterceptor(CircuitBreaker())
    purgatory_async = AsyncCircuitBreakerFactory()
    purgatory_sync = SyncCircuitBreakerFactory()
    py = pybreaker.CircuitBreaker()

    async def purgatory_call() -> object:
        async with await purgatory_async.get_breaker("endpoint"):
            return await _ok()

    def purgatory_sync_call() -> object:
        with purgatory_sync.get_breaker("endpoint"):
            return _ok_sync()

    n = 20_000
    return {
        "plugin-di CircuitBreakerInterceptor.intercept_unary": best_async_us(
            lambda: ours.intercept_unary(_ok, None, ctx), n
        ),
        "purgatory AsyncCircuitBreakerFactory": best_async_us(purgatory_call, n),
        "plugin-di CircuitBreakerInterceptor.intercept_unary_sync": best_us(
            lambda: ours.intercept_unary_sync(_ok_sync, None, ctx), n
        ),
        "purgatory SyncCircuitBreakerFactory": best_us(purgatory_sync_call, n),
        "pybreaker CircuitBreaker.call (sync only)": best_us(lambda: py.call(_ok_sync), n),
    }


def bucket() -> dict[str, float]:
    from aiolimiter import AsyncLimiter
    from limits import RateLimitItemPerSecond
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    from plugin_di.rpc.interceptors.ratelimit import Rate, TokenBucketLimiter

    ours = TokenBucketLimiter()
    rate = Rate(1e9, 1_000_000)
    item = RateLimitItemPerSecond(1_000_000_000)
    moving = MovingWindowRateLimiter(MemoryStorage())
    fixed = FixedWindowRateLimiter(MemoryStorage())
    many_keys = [f"ip:10.0.{i // 256}.{i % 256}" for i in range(10_000)]
    cycle = iter(range(10**12))

    def ours_many() -> bool:
        return ours.allow(many_keys[next(cycle) % 10_000], rate)

    def fixed_many() -> bool:
        return fixed.hit(item, many_keys[next(cycle) % 10_000])

    aio = AsyncLimiter(1e9, 1)

    async def aiolimiter_call() -> None:
        await aio.acquire()

    n = 50_000
    return {
        "plugin-di TokenBucketLimiter.allow (one key)": best_us(lambda: ours.allow("k", rate), n),
        "plugin-di TokenBucketLimiter.allow (10,000 keys)": best_us(ours_many, n),
        "limits FixedWindowRateLimiter.hit (one key)": best_us(lambda: fixed.hit(item, "k"), n),
        "limits FixedWindowRateLimiter.hit (10,000 keys)": best_us(fixed_many, n),
        "limits MovingWindowRateLimiter.hit (one key)": best_us(
            lambda: moving.hit(item, "k"), 5_000
        ),
        "aiolimiter AsyncLimiter.acquire (one limiter, async only)": best_async_us(
            aiolimiter_call, n
        ),
    }


def versions() -> dict[str, float]:
    import semver
    from packaging.version import Version

    from plugin_di.rpc.validation import SemVer

    a, b = "1.10.0-rc.2", "1.9.3"
    n = 50_000
    return {
        "plugin-di SemVer.parse x2 + compare": best_us(
            lambda: SemVer.parse(a) > SemVer.parse(b), n
        ),
        "semver Version.parse x2 + compare": best_us(
            lambda: semver.Version.parse(a) > semver.Version.parse(b), n
        ),
        "packaging Version x2 + compare (PEP 440, not semver)": best_us(
            lambda: Version(a) > Version(b), n
        ),
    }


def main() -> None:
    for title, figures in (
        ("retry", retry()),
        ("circuit breaker", breaker()),
        ("rate limit", bucket()),
        ("semver", versions()),
    ):
        print(f"## {title}")
        for name, us in figures.items():
            print(f"| {name} | {us:.2f} us |")


if __name__ == "__main__":
    main()
