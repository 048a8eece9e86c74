"""Retry: backoff with full jitter, retryable codes, idempotency, deadline, streams."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, StreamType
from connectrpc.request import RequestContext

from plugin_di.clock import FakeClock
from plugin_di.rpc.interceptors.ratelimit import retry_after_detail
from plugin_di.rpc.interceptors.retry import RetryInterceptor, RetryPolicy
from tests.rpc.interceptors.support import SteppingClock, kv_client, make_ctx, pb, unavailable
from tests.support.kv import KV


class Flaky:
    """``call_next`` failing with the given errors, then answering ``ok``."""

    def __init__(self, *errors: ConnectError) -> None:
        self.errors = list(errors)
        self.attempts = 0

    async def __call__(self, request: str, ctx: RequestContext[Any, Any]) -> str:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_defaults_and_backoff_caps() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_backoff, policy.max_backoff) == (3, 0.1, 10.0)
    assert policy.multiplier == 2.0
    capped = RetryPolicy(max_backoff=1.0)
    assert [capped.backoff_cap(n) for n in range(1, 7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


async def test_retries_unavailable_with_full_jitter() -> None:
    clock = SteppingClock()
    retry = RetryInterceptor(RetryPolicy(), clock=clock, random=lambda: 0.5)
    call = Flaky(unavailable(), unavailable())
    assert await retry.intercept_unary(call, "req", make_ctx()) == "ok"
    assert call.attempts == 3
    assert clock.slept == pytest.approx([0.05, 0.1])  # half of 100 ms, then of 200 ms


async def test_jitter_spans_zero_to_cap() -> None:
    clock = SteppingClock()
    for r in (0.0, 0.999):
        retry = RetryInterceptor(RetryPolicy(), clock=clock, random=functools.partial(float, r))
        await retry.intercept_unary(Flaky(unavailable()), "req", make_ctx())
    assert clock.slept == pytest.approx([0.0, 0.0999])


async def test_stops_after_max_attempts_with_the_last_error() -> None:
    clock = SteppingClock()
    retry = RetryInterceptor(RetryPolicy(max_attempts=5), clock=clock, random=lambda: 1.0)
    call = Flaky(*(unavailable(f"down {i}") for i in range(10)))
    with pytest.raises(ConnectError, match="down 4"):
        await retry.intercept_unary(call, "req", make_ctx())
    assert call.attempts == 5
    assert len(clock.slept) == 4


@pytest.mark.parametrize(
    "code",
    [Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.INTERNAL, Code.DEADLINE_EXCEEDED, Code.UNKNOWN],
)
async def test_other_codes_are_not_retried(code: Code) -> None:
    retry = RetryInterceptor(clock=SteppingClock())
    call = Flaky(ConnectError(code, "no"))
    with pytest.raises(ConnectError):
        await retry.intercept_unary(call, "req", make_ctx())
    assert call.attempts == 1


async def test_resource_exhausted_only_with_a_hint_and_waits_for_it() -> None:
    clock = SteppingClock()
    retry = RetryInterceptor(clock=clock, random=lambda: 0.5)
    plain = Flaky(ConnectError(Code.RESOURCE_EXHAUSTED, "quota"))
    with pytest.raises(ConnectError, match="quota"):
        await retry.intercept_unary(plain, "req", make_ctx())
    assert plain.attempts == 1
    hinted = Flaky(ConnectError(Code.RESOURCE_EXHAUSTED, "slow down", [retry_after_detail(2.5)]))
    assert await retry.intercept_unary(hinted, "req", make_ctx()) == "ok"
    assert clock.slept == [2.5]
    too_long = Flaky(ConnectError(Code.RESOURCE_EXHAUSTED, "later", [retry_after_detail(10.5)]))
    with pytest.raises(ConnectError, match="later"):  # beyond max_backoff: give up at once
        await retry.intercept_unary(too_long, "req", make_ctx())
    assert too_long.attempts == 1


async def test_never_retries_a_non_idempotent_method_unless_opted_in() -> None:
    ctx = make_ctx(method="Register", idempotency=IdempotencyLevel.UNKNOWN)
    call = Flaky(unavailable())
    with pytest.raises(ConnectError):
        await RetryInterceptor(clock=SteppingClock()).intercept_unary(call, "req", ctx)
    assert call.attempts == 1
    for opt_in in ("/kv.v1.KVService/Register", "kv.v1.KVService"):
        policy = RetryPolicy(opt_in=frozenset({opt_in}))
        call = Flaky(unavailable())
        assert await RetryInterceptor(policy, clock=SteppingClock()).intercept_unary(
            call, "req", ctx
        )
        assert call.attempts == 2


async def test_stops_at_the_deadline() -> None:
    clock = SteppingClock()
    retry = RetryInterceptor(RetryPolicy(max_attempts=10), clock=clock, random=lambda: 1.0)
    call = Flaky(*(unavailable() for _ in range(10)))
    with pytest.raises(ConnectError) as info:
        await retry.intercept_unary(call, "req", make_ctx(timeout_ms=250))
    assert info.value.code is Code.UNAVAILABLE
    # waits 0.1 (t=0.1); the next wait of 0.2 would end at 0.3, past the 0.25 s deadline
    assert call.attempts == 2
    assert clock.slept == pytest.approx([0.1])


async def test_server_stream_retried_only_before_the_first_message() -> None:
    clock = SteppingClock()
    retry = RetryInterceptor(clock=clock, random=lambda: 0.5)
    ctx = make_ctx(method="Scan", stream_type=StreamType.SERVER_STREAM)
    script: list[list[Any]] = [[unavailable("early")], ["m1", unavailable("late")]]
    starts: list[int] = []

    async def call_next(request: str, ctx: RequestContext[Any, Any]) -> AsyncIterator[str]:
        starts.append(1)
        for item in script.pop(0):
            if isinstance(item, ConnectError):
                raise item
            yield item

    got: list[str] = []

    async def consume() -> None:
        async for message in retry.intercept_server_stream(call_next, "req", ctx):
            got.append(message)

    with pytest.raises(ConnectError, match="late"):
        await consume()
    assert got == ["m1"]
    assert len(starts) == 2  # retried after "early", not after "late"


def test_sync_twin() -> None:
    slept: list[float] = []
    retry = RetryInterceptor(clock=FakeClock(), random=lambda: 1.0, sleep_sync=slept.append)
    errors = [unavailable(), unavailable()]

    def call_next(request: str, ctx: RequestContext[Any, Any]) -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    assert retry.intercept_unary_sync(call_next, "req", make_ctx()) == "ok"
    assert slept == pytest.approx([0.1, 0.2])

    stream_errors = [unavailable()]

    def stream(request: str, ctx: RequestContext[Any, Any]) -> Iterator[str]:
        if stream_errors:
            raise stream_errors.pop(0)
        yield "a"
        yield "b"

    ctx = make_ctx(stream_type=StreamType.SERVER_STREAM)
    assert list(retry.intercept_server_stream_sync(stream, "req", ctx)) == ["a", "b"]


async def test_over_the_wire_idempotent_retried_streaming_watch_not() -> None:
    clock = SteppingClock()
    service = KV()
    retry = RetryInterceptor(clock=clock, random=lambda: 0.5)
    async with kv_client(service, client_interceptors=[retry]) as client:
        service.fail_next = [unavailable(), unavailable()]
        await client.put(pb.PutRequest(key="a", value=b"1"))  # IDEMPOTENT
        assert service.calls == 3
        service.fail_next = [unavailable()]
        with pytest.raises(ConnectError) as info:
            _ = [e async for e in client.watch(pb.WatchRequest())]  # no idempotency level
        assert info.value.code is Code.UNAVAILABLE
        assert service.calls == 4
