"""A circuit breaker per endpoint, and the client interceptor that applies it.

CLOSED: calls pass. ``failure_threshold`` consecutive failures (default 5), or a failure ratio
of at least ``failure_ratio`` among at least ``ratio_min_calls`` calls in the last
``ratio_window`` seconds, open the circuit.
OPEN: calls fail fast with UNAVAILABLE, without reaching the network, for ``open_timeout``
(10 s). The first call after that moves to HALF_OPEN.
HALF_OPEN: up to ``half_open_max_probes`` calls (1) at a time go through; the others fail fast.
A probe failure reopens the circuit; ``success_threshold`` successes (2) close it.

A failure is, by default, UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED
or a non-Connect exception; other errors (INVALID_ARGUMENT, NOT_FOUND...) show the endpoint is
up and count as successes. A cancelled call counts as nothing. Results of calls that started
before the last state change are ignored. ``on_state_change(old, new)`` is called after every
transition, outside the breaker's lock.

Why not purgatory or pybreaker: docs/dependencies.md.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "BreakerConfig",
    "CircuitBreaker",
    "CircuitBreakerInterceptor",
    "CircuitState",
    "default_is_failure",
]

_log = logging.getLogger(__name__)

REQ = TypeVar("REQ")
RES = TypeVar("RES")


class CircuitState(enum.Enum):
    """The breaker's state; ``str()`` gives ``Closed``, ``Open``, ``HalfOpen``."""

    CLOSED = "Closed"
    OPEN = "Open"
    HALF_OPEN = "HalfOpen"

    def __str__(self) -> str:
        return self.value


_FAILURE_CODES = frozenset(
    {
        Code.UNAVAILABLE,
        Code.RESOURCE_EXHAUSTED,
        Code.INTERNAL,
        Code.UNKNOWN,
        Code.DEADLINE_EXCEEDED,
    }
)


def default_is_failure(error: BaseException) -> bool:
    """Whether ``error`` says the endpoint is unhealthy (see the module docstring)."""
    if isinstance(error, ConnectError):
        return error.code in _FAILURE_CODES
    return isinstance(error, Exception)


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds and timings of a ``CircuitBreaker`` (seconds)."""

    failure_threshold: int = 5
    failure_ratio: float | None = None
    ratio_window: float = 10.0
    ratio_min_calls: int = 10
    open_timeout: float = 10.0
    half_open_max_probes: int = 1
    success_threshold: int = 2
    is_failure: Callable[[BaseException], bool] = default_is_failure

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.success_threshold < 1:
            raise ValueError("BreakerConfig thresholds must be >= 1")
        if self.half_open_max_probes < 1:
            raise ValueError("BreakerConfig.half_open_max_probes must be >= 1")
        if self.failure_ratio is not None and not 0 < self.failure_ratio <= 1:
            raise ValueError("BreakerConfig.failure_ratio must be in (0, 1]")


StateChange = Callable[[CircuitState, CircuitState], None]


class CircuitBreaker:
    """One endpoint's breaker. ``acquire()`` before a call, ``record(permit, error)`` after."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "endpoint",
        on_state_change: StateChange | None = None,
    ) -> None:
        self.config = config if config is not None else BreakerConfig()
        self.name = name
        self.on_state_change = on_state_change
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._consecutive_failures = 0
        self._successes = 0
        self._probes = 0
        self._opened_at = 0.0
        self._window: deque[tuple[float, bool]] = deque()
        self._window_failures = 0

    @property
    def state(self) -> CircuitState:
        """The current state (OPEN moves to HALF_OPEN only when a call arrives)."""
        return self._state

    def reset(self) -> None:
        """Close the breaker now (e.g. after the endpoint was replaced by a fresh one)."""
        changes: list[tuple[CircuitState, CircuitState]] = []
        with self._lock:
            if self._state is not CircuitState.CLOSED:
                self._set(CircuitState.CLOSED, changes)
        self._notify(changes)

    def _set(self, new: CircuitState, changes: list[tuple[CircuitState, CircuitState]]) -> None:
        changes.append((self._state, new))
        self._state = new
        self._generation += 1
        self._consecutive_failures = 0
        self._successes = 0
        self._probes = 0
        self._window.clear()
        self._window_failures = 0
        if new is CircuitState.OPEN:
            self._opened_at = self._clock.now()

    def _notify(self, changes: list[tuple[CircuitState, CircuitState]]) -> None:
        callback = self.on_state_change
        for old, new in changes:
            _log.info("circuit breaker %s: %s -> %s", self.name, old, new)
            if callback is not None:
                try:
                    callback(old, new)
                except Exception:
                    _log.exception("on_state_change callback of breaker %s failed", self.name)

    def acquire(self) -> int:
        """Admit a call and return its permit, or raise UNAVAILABLE to fail fast."""
        changes: list[tuple[CircuitState, CircuitState]] = []
        try:
            with self._lock:
                if self._state is CircuitState.OPEN:
                    remaining = self._opened_at + self.config.open_timeout - self._clock.now()
                    if remaining > 0:
                        raise ConnectError(
                            Code.UNAVAILABLE,
                            f"circuit breaker for {self.name} is open after repeated failures; "
                            f"next probe in {remaining:.1f}s",
                        )
                    self._set(CircuitState.HALF_OPEN, changes)
                if self._state is CircuitState.HALF_OPEN:
                    if self._probes >= self.config.half_open_max_probes:
                        raise ConnectError(
                            Code.UNAVAILABLE,
                            f"circuit breaker for {self.name} is half-open and its probe "
                            f"calls are in flight; retry shortly",
                        )
                    self._probes += 1
                return self._generation
        finally:
            self._notify(changes)

    def record(self, permit: int, error: BaseException | None) -> None:
        """Report how the call admitted with ``permit`` ended (``error`` None: success)."""
        if error is not None and not isinstance(error, Exception):
            self.release(permit)  # cancellation and the like say nothing about the endpoint
            return
        if isinstance(error, ConnectError) and error.code is Code.CANCELED:
            self.release(permit)
            return
        failed = error is not None and self.config.is_failure(error)
        changes: list[tuple[CircuitState, CircuitState]] = []
        with self._lock:
            if permit != self._generation:
                return
            if self._state is CircuitState.HALF_OPEN:
                self._probes -= 1
                if failed:
                    self._set(CircuitState.OPEN, changes)
                else:
                    self._successes += 1
                    if self._successes >= self.config.success_threshold:
                        self._set(CircuitState.CLOSED, changes)
            elif self._state is CircuitState.CLOSED:
                self._record_closed(failed, changes)
        self._notify(changes)

    def _record_closed(
        self, failed: bool, changes: list[tuple[CircuitState, CircuitState]]
    ) -> None:
        cfg = self.config
        self._consecutive_failures = self._consecutive_failures + 1 if failed else 0
        if self._consecutive_failures >= cfg.failure_threshold:
            self._set(CircuitState.OPEN, changes)
            return
        if cfg.failure_ratio is None:
            return
        now = self._clock.now()
        window = self._window
        window.append((now, failed))
        self._window_failures += failed
        cutoff = now - cfg.ratio_window
        while window and window[0][0] <= cutoff:
            self._window_failures -= window.popleft()[1]
        total = len(window)
        if (
            failed
            and total >= cfg.ratio_min_calls
            and self._window_failures / total >= cfg.failure_ratio
        ):
            self._set(CircuitState.OPEN, changes)

    def release(self, permit: int) -> None:
        """Give back a permit without a verdict (the call was cancelled)."""
        with self._lock:
            if permit == self._generation and self._state is CircuitState.HALF_OPEN:
                self._probes -= 1


class CircuitBreakerInterceptor:
    """Client interceptor putting calls through a breaker: all four kinds of async call, and
    unary and server-streaming sync calls."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    async def intercept_unary(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], Awaitable[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> RES:
        permit = self.breaker.acquire()
        try:
            response = await call_next(request, ctx)
        except BaseException as e:
            self.breaker.record(permit, e)
            raise
        self.breaker.record(permit, None)
        return response

    async def intercept_client_stream(
        self,
        call_next: Callable[[AsyncIterator[REQ], RequestContext[REQ, RES]], Awaitable[RES]],
        request: AsyncIterator[REQ],
        ctx: RequestContext[REQ, RES],
    ) -> RES:
        permit = self.breaker.acquire()
        try:
            response = await call_next(request, ctx)
        except BaseException as e:
            self.breaker.record(permit, e)
            raise
        self.breaker.record(permit, None)
        return response

    async def intercept_server_stream(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], AsyncIterator[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> AsyncIterator[RES]:
        permit = self.breaker.acquire()
        async for message in self._guard_stream(permit, call_next(request, ctx)):
            yield message

    async def intercept_bidi_stream(
        self,
        call_next: Callable[[AsyncIterator[REQ], RequestContext[REQ, RES]], AsyncIterator[RES]],
        request: AsyncIterator[REQ],
        ctx: RequestContext[REQ, RES],
    ) -> AsyncIterator[RES]:
        permit = self.breaker.acquire()
        async for message in self._guard_stream(permit, call_next(request, ctx)):
            yield message

    async def _guard_stream(self, permit: int, stream: AsyncIterator[RES]) -> AsyncIterator[RES]:
        done = False
        try:
            async for message in stream:
                yield message
            done = True
        except BaseException as e:
            done = True
            self.breaker.record(permit, e)
            raise
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
            if not done:  # the consumer stopped early: no verdict
                self.breaker.release(permit)
        self.breaker.record(permit, None)

    def intercept_unary_sync(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], RES],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> RES:
        permit = self.breaker.acquire()
        try:
            response = call_next(request, ctx)
        except BaseException as e:
            self.breaker.record(permit, e)
            raise
        self.breaker.record(permit, None)
        return response

    def intercept_server_stream_sync(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], Iterator[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> Iterator[RES]:
        permit = self.breaker.acquire()
        stream = call_next(request, ctx)
        done = False
        try:
            yield from stream
            done = True
        except BaseException as e:
            done = True
            self.breaker.record(permit, e)
            raise
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            if not done:
                self.breaker.release(permit)
        self.breaker.record(permit, None)
