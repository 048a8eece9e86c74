"""Client retries with exponential backoff and full jitter.

Only safe calls are retried: methods whose proto ``idempotency_level`` is NO_SIDE_EFFECTS or
IDEMPOTENT, plus procedures or services the user opts in. Only UNAVAILABLE is retried, and
RESOURCE_EXHAUSTED when it carries a retry-after hint (``google.rpc.RetryInfo``, as the rate
limiter sends) of at most ``max_backoff``; the wait is then at least the hint. Retry *n*
waits a uniform random time in ``[0, min(max_backoff, initial_backoff * multiplier**(n-1))]``
("full jitter"). No retry is started if its wait would reach the call's deadline
(``ctx.timeout_ms``); the last error is raised instead. A server stream is retried only until
its first message has arrived. Client- and bidi-streaming calls are never retried (their
request stream cannot be replayed).

Why not tenacity or stamina: docs/dependencies.md.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo
from connectrpc.request import RequestContext

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc.interceptors.ratelimit import retry_after_of

__all__ = ["RetryInterceptor", "RetryPolicy"]

REQ = TypeVar("REQ")
RES = TypeVar("RES")

_SAFE = frozenset({IdempotencyLevel.NO_SIDE_EFFECTS, IdempotencyLevel.IDEMPOTENT})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; ``opt_in`` names extra procedures or services
    (``/pkg.Service/Method`` or ``pkg.Service``) to retry despite their idempotency level."""

    max_attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 10.0
    multiplier: float = 2.0
    opt_in: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError(
                "RetryPolicy needs initial_backoff >= 0, max_backoff >= 0 and multiplier >= 1"
            )

    def backoff_cap(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (1 for the first retry)."""
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))

    def retries_method(self, method: MethodInfo[Any, Any]) -> bool:
        """Whether calls of ``method`` may be sent more than once."""
        return (
            method.idempotency_level in _SAFE
            or method.service_name in self.opt_in
            or f"/{method.service_name}/{method.name}" in self.opt_in
        )


class RetryInterceptor:
    """Client interceptor applying a ``RetryPolicy``; waits through ``clock``.

    ``random`` returns floats in [0, 1) for the jitter; ``sleep_sync`` is the blocking sleep
    of the sync twins (sync clients).
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        random: Callable[[], float] = random.random,
        sleep_sync: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy if policy is not None else RetryPolicy()
        self._clock = clock
        self._random = random
        self._sleep_sync = sleep_sync

    def _deadline(self, ctx: RequestContext[Any, Any]) -> float | None:
        timeout_ms = ctx.timeout_ms
        return None if timeout_ms is None else self._clock.now() + timeout_ms / 1000.0

    def next_delay(self, error: ConnectError, attempt: int, deadline: float | None) -> float | None:
        """The wait before another attempt after ``attempt`` failed with ``error``, or None."""
        if attempt >= self.policy.max_attempts:
            return None
        if error.code is Code.UNAVAILABLE:
            hint = 0.0
        elif error.code is Code.RESOURCE_EXHAUSTED:
            found = retry_after_of(error)
            if found is None or found > self.policy.max_backoff:
                return None
            hint = found
        else:
            return None
        delay = max(hint, self._random() * self.policy.backoff_cap(attempt))
        if deadline is not None and self._clock.now() + delay >= deadline:
            return None
        return delay

    # --- async ---------------------------------------------------------------------------

    async def intercept_unary(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], Awaitable[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> RES:
        if not self.policy.retries_method(ctx.method):
            return await call_next(request, ctx)
        deadline = self._deadline(ctx)
        attempt = 1
        while True:
            try:
                return await call_next(request, ctx)
            except ConnectError as e:
                delay = self.next_delay(e, attempt, deadline)
                if delay is None:
                    raise
            await self._clock.sleep(delay)
            attempt += 1

    def intercept_server_stream(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], AsyncIterator[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> AsyncIterator[RES]:
        if not self.policy.retries_method(ctx.method):
            return call_next(request, ctx)
        return self._retry_stream(call_next, request, ctx)

    async def _retry_stream(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], AsyncIterator[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> AsyncIterator[RES]:
        deadline = self._deadline(ctx)
        attempt = 1
        while True:
            stream = call_next(request, ctx)
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                return
            except ConnectError as e:
                await _aclose(stream)
                delay = self.next_delay(e, attempt, deadline)
                if delay is None:
                    raise
            else:
                break
            await self._clock.sleep(delay)
            attempt += 1
        try:
            yield first
            async for message in stream:
                yield message
        finally:
            await _aclose(stream)

    # --- sync ----------------------------------------------------------------------------

    def intercept_unary_sync(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], RES],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> RES:
        if not self.policy.retries_method(ctx.method):
            return call_next(request, ctx)
        deadline = self._deadline(ctx)
        attempt = 1
        while True:
            try:
                return call_next(request, ctx)
            except ConnectError as e:
                delay = self.next_delay(e, attempt, deadline)
                if delay is None:
                    raise
            self._sleep_sync(delay)
            attempt += 1

    def intercept_server_stream_sync(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], Iterator[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> Iterator[RES]:
        if not self.policy.retries_method(ctx.method):
            return call_next(request, ctx)
        return self._retry_stream_sync(call_next, request, ctx)

    def _retry_stream_sync(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], Iterator[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> Iterator[RES]:
        deadline = self._deadline(ctx)
        attempt = 1
        while True:
            stream = call_next(request, ctx)
            try:
                first = next(stream)
            except StopIteration:
                return
            except ConnectError as e:
                _close(stream)
                delay = self.next_delay(e, attempt, deadline)
                if delay is None:
                    raise
            else:
                break
            self._sleep_sync(delay)
            attempt += 1
        try:
            yield first
            yield from stream
        finally:
            _close(stream)


async def _aclose(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _close(stream: Iterator[Any]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()
