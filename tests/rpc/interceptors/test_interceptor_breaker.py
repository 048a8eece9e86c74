"""Circuit breaker: the full state walk, probes, ratio window, callbacks, interceptor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.clock import FakeClock
from plugin_di.rpc.interceptors.breaker import (
    BreakerConfig,
    CircuitBreaker,
    CircuitBreakerInterceptor,
    CircuitState,
    default_is_failure,
)
from tests.rpc.interceptors.support import kv_client, make_ctx, pb, unavailable
from tests.support.kv import KV

C, OPEN, H = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def make(clock: FakeClock, **config: Any) -> tuple[CircuitBreaker, list[tuple[Any, Any]]]:
    changes: list[tuple[Any, Any]] = []
    breaker = CircuitBreaker(
        BreakerConfig(**config),
        clock=clock,
        name="kv@127.0.0.1:1",
        on_state_change=lambda old, new: changes.append((old, new)),
    )
    return breaker, changes


def fail(breaker: CircuitBreaker, error: BaseException | None = None) -> None:
    breaker.record(breaker.acquire(), error or unavailable())


def succeed(breaker: CircuitBreaker) -> None:
    breaker.record(breaker.acquire(), None)


def test_defaults_and_names() -> None:
    config = BreakerConfig()
    assert (config.failure_threshold, config.success_threshold) == (5, 2)
    assert (config.open_timeout, config.half_open_max_probes) == (10.0, 1)
    assert [str(s) for s in CircuitState] == ["Closed", "Open", "HalfOpen"]


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (ConnectError(Code.INVALID_ARGUMENT, ""), False),
        (ConnectError(Code.NOT_FOUND, ""), False),
        (ConnectError(Code.PERMISSION_DENIED, ""), False),
        (ConnectError(Code.UNAVAILABLE, ""), True),
        (ConnectError(Code.RESOURCE_EXHAUSTED, ""), True),
        (ConnectError(Code.INTERNAL, ""), True),
        (ConnectError(Code.DEADLINE_EXCEEDED, ""), True),
        (RuntimeError("x"), True),
    ],
)
def test_default_is_failure(error: BaseException, failure: bool) -> None:
    assert default_is_failure(error) is failure


def test_full_state_walk_and_callbacks() -> None:
    clock = FakeClock()
    breaker, changes = make(clock, failure_threshold=3, success_threshold=2)
    fail(breaker)
    fail(breaker)
    assert breaker.state is C
    fail(breaker)
    assert breaker.state is OPEN
    # OPEN: fail fast without calling anything
    with pytest.raises(ConnectError) as info:
        breaker.acquire()
    assert info.value.code is Code.UNAVAILABLE
    assert "circuit breaker for kv@127.0.0.1:1 is open" in info.value.message
    clock.advance(9.9)
    with pytest.raises(ConnectError):
        breaker.acquire()
    clock.advance(0.1)
    # HALF_OPEN: one probe at a time
    probe = breaker.acquire()
    assert breaker.state is H
    with pytest.raises(ConnectError, match="half-open"):
        breaker.acquire()
    breaker.record(probe, None)
    assert breaker.state is H  # 1 of 2 successes
    # a failed probe reopens
    fail(breaker)
    assert breaker.state is OPEN
    clock.advance(10)
    succeed(breaker)
    succeed(breaker)
    assert breaker.state is C
    assert changes == [(C, OPEN), (OPEN, H), (H, OPEN), (OPEN, H), (H, C)]


def test_reset_closes_an_open_breaker_and_tells_the_callback() -> None:
    breaker, changes = make(FakeClock(), failure_threshold=1)
    fail(breaker)
    assert breaker.state is OPEN
    breaker.reset()
    assert breaker.state is C
    succeed(breaker)  # admitted at once: no open timeout to wait out
    breaker.reset()  # already closed: nothing to tell
    assert changes == [(C, OPEN), (OPEN, C)]


def test_success_and_non_failure_errors_reset_the_count() -> None:
    breaker, _ = make(FakeClock(), failure_threshold=3)
    fail(breaker)
    fail(breaker)
    succeed(breaker)
    fail(breaker)
    fail(breaker)
    assert breaker.state is C
    for _ in range(10):
        fail(breaker, ConnectError(Code.INVALID_ARGUMENT, "bad"))
    assert breaker.state is C
    fail(breaker)
    fail(breaker)
    fail(breaker)
    assert breaker.state is OPEN


def test_failure_ratio_over_a_window() -> None:
    clock = FakeClock()
    breaker, changes = make(
        clock, failure_threshold=100, failure_ratio=0.5, ratio_window=10.0, ratio_min_calls=4
    )
    fail(breaker)
    succeed(breaker)
    clock.advance(4.0)
    fail(breaker)  # 2 of 3: over the ratio, but fewer than 4 calls
    assert breaker.state is C
    succeed(breaker)  # 2 of 4, judged on the next failure
    assert breaker.state is C
    clock.advance(4.0)
    fail(breaker)  # 3 of 5, never two failures in a row
    assert breaker.state is OPEN
    assert changes == [(C, OPEN)]


def test_ratio_window_forgets_old_calls() -> None:
    clock = FakeClock()
    breaker, _ = make(clock, failure_ratio=0.5, ratio_window=10.0, ratio_min_calls=4)
    fail(breaker)
    fail(breaker)
    clock.advance(11)  # those two fall out of the window
    succeed(breaker)
    succeed(breaker)
    fail(breaker)
    assert breaker.state is C  # 1 of 3 in the window


def test_late_results_and_cancellation() -> None:
    clock = FakeClock()
    breaker, _ = make(clock, failure_threshold=1, success_threshold=1)
    early = breaker.acquire()
    fail(breaker)
    assert breaker.state is OPEN
    breaker.record(early, None)  # started before the change: ignored
    assert breaker.state is OPEN
    clock.advance(10)
    probe = breaker.acquire()
    breaker.record(probe, asyncio.CancelledError())  # no verdict, the probe slot is free
    assert breaker.state is H
    probe = breaker.acquire()
    breaker.release(probe)
    succeed(breaker)
    assert breaker.state is C


def test_callback_errors_do_not_break_calls(caplog: pytest.LogCaptureFixture) -> None:
    def boom(old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("sink down")

    breaker = CircuitBreaker(BreakerConfig(failure_threshold=1), on_state_change=boom)
    fail(breaker)
    assert breaker.state is OPEN
    assert "on_state_change callback" in caplog.text


async def test_interceptor_fails_fast_then_recovers_over_the_wire() -> None:
    clock = FakeClock()
    breaker, changes = make(clock, failure_threshold=2, success_threshold=1)
    service = KV()
    interceptor = CircuitBreakerInterceptor(breaker)
    async with kv_client(service, client_interceptors=[interceptor]) as client:
        service.fail_next = [unavailable(), unavailable()]
        for _ in range(2):
            with pytest.raises(ConnectError):
                await client.get(pb.GetRequest(key="a"))
        with pytest.raises(ConnectError) as info:
            await client.get(pb.GetRequest(key="a"))
        assert info.value.code is Code.UNAVAILABLE
        with pytest.raises(ConnectError, match="is open"):
            _ = [e async for e in client.watch(pb.WatchRequest())]
        assert service.calls == 2  # the fail-fast calls never reached the server
        clock.advance(10)
        assert (await client.get(pb.GetRequest(key="a"))).found is False
        assert breaker.state is C
        await client.put(pb.PutRequest(key="a", value=b"1"))
        events = [e async for e in client.watch(pb.WatchRequest())]
        assert [e.key for e in events] == ["a"]
    assert changes == [(C, OPEN), (OPEN, H), (H, C)]


async def test_stream_failure_counts_and_early_stop_does_not() -> None:
    breaker, _ = make(FakeClock(), failure_threshold=1)
    interceptor = CircuitBreakerInterceptor(breaker)

    async def failing(request: str, ctx: RequestContext[Any, Any]) -> AsyncIterator[str]:
        yield "one"
        raise unavailable()

    async def endless(request: str, ctx: RequestContext[Any, Any]) -> AsyncIterator[str]:
        while True:
            yield "x"

    stream: Any = interceptor.intercept_server_stream(endless, "r", make_ctx())
    assert await anext(stream) == "x"
    await stream.aclose()  # the consumer stopped: no verdict
    assert breaker.state is C
    with pytest.raises(ConnectError):
        _ = [m async for m in interceptor.intercept_server_stream(failing, "r", make_ctx())]
    assert breaker.state is OPEN


def test_sync_twin() -> None:
    breaker, _ = make(FakeClock(), failure_threshold=1)
    interceptor = CircuitBreakerInterceptor(breaker)

    def ok(request: str, ctx: RequestContext[Any, Any]) -> str:
        return "ok"

    def down(request: str, ctx: RequestContext[Any, Any]) -> str:
        raise unavailable()

    assert interceptor.intercept_unary_sync(ok, "r", make_ctx()) == "ok"
    with pytest.raises(ConnectError):
        interceptor.intercept_unary_sync(down, "r", make_ctx())
    with pytest.raises(ConnectError, match="is open"):
        interceptor.intercept_unary_sync(ok, "r", make_ctx())
