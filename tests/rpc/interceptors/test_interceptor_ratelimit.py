"""Token buckets: burst, refill, key independence, eviction; the interceptor and its hint."""

from __future__ import annotations

import math
from typing import Any

import pytest
from connectrpc.client import ResponseMetadata
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from connectrpc.request import RequestContext

from plugin_di.clock import FakeClock
from plugin_di.rpc.interceptors.auth import AuthIdentity, ServerAuth
from plugin_di.rpc.interceptors.ratelimit import (
    Rate,
    RateLimitInterceptor,
    RateLimitPolicy,
    TokenBucketLimiter,
    default_rate_limit_key,
    host_rate_limits,
    retry_after_detail,
    retry_after_of,
)
from tests.rpc.interceptors.support import PROTOCOLS, kv_client, make_ctx, pb
from tests.support.kv import KV


def test_burst_then_refill() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(clock)
    rate = Rate(10, 5)
    assert [limiter.allow("k", rate) for _ in range(6)] == [True] * 5 + [False]
    assert limiter.retry_after("k", rate) == pytest.approx(0.1)
    clock.advance(0.05)
    assert not limiter.allow("k", rate)
    clock.advance(0.06)  # 0.11 s since empty: 1.1 tokens
    assert limiter.allow("k", rate)
    assert not limiter.allow("k", rate)
    clock.advance(100)  # refill is capped at the burst
    assert [limiter.allow("k", rate) for _ in range(6)] == [True] * 5 + [False]


def test_keys_are_independent() -> None:
    limiter = TokenBucketLimiter(FakeClock())
    rate = Rate(1, 2)
    assert [limiter.allow("a", rate) for _ in range(3)] == [True, True, False]
    assert [limiter.allow("b", rate) for _ in range(3)] == [True, True, False]
    assert len(limiter) == 2


def test_rate_edges() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(clock)
    assert not limiter.allow("zero-burst", Rate(100, 0))
    assert limiter.retry_after("zero-burst", Rate(100, 0)) == math.inf
    once = Rate(0, 2)  # rps 0: a one-time budget
    assert [limiter.allow("o", once) for _ in range(3)] == [True, True, False]
    clock.advance(1000)
    assert not limiter.allow("o", once)
    assert limiter.retry_after("o", once) == math.inf
    assert limiter.retry_after("never-seen", once) == 0.0
    with pytest.raises(ValueError, match="rps >= 0"):
        Rate(-1, 1)


def test_idle_buckets_are_evicted_after_five_minutes() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(clock)
    rate = Rate(1, 1)
    limiter.allow("old", rate)
    clock.advance(200)
    limiter.allow("recent", rate)
    clock.advance(101)  # "old" idle 301 s, "recent" 101 s
    limiter.allow("new", rate)  # a new key triggers the sweep (due every 60 s)
    assert len(limiter) == 2
    assert limiter.allow("old", rate)  # an evicted key starts again with a full bucket
    clock.advance(300)
    assert limiter.sweep() == 3
    assert len(limiter) == 0


def test_policy_picks_method_then_service_then_default() -> None:
    policy = RateLimitPolicy(
        Rate(100, 200),
        services={"kv.v1.KVService": Rate(10, 20)},
        methods={"/kv.v1.KVService/Put": Rate(1, 5)},
    )
    assert policy.rule_for("kv.v1.KVService", "Put") == ("/kv.v1.KVService/Put", Rate(1, 5))
    assert policy.rule_for("kv.v1.KVService", "Get") == ("kv.v1.KVService", Rate(10, 20))
    assert policy.rule_for("other.Svc", "Get") == ("*", Rate(100, 200))
    assert RateLimitPolicy(None).rule_for("other.Svc", "Get") is None


def test_host_rate_limits() -> None:
    policy = host_rate_limits(Rate(1000, 2000), RegisterService=Rate(5, 20))
    assert policy.rule_for("connectplugin.v1.ServiceRegistry", "RegisterService") == (
        "/connectplugin.v1.ServiceRegistry/RegisterService",
        Rate(5, 20),
    )
    assert policy.rule_for("connectplugin.v1.HandshakeService", "Handshake") == (
        "/connectplugin.v1.HandshakeService/Handshake",
        Rate(10, 20),
    )
    assert policy.rule_for("connectplugin.v1.PluginLifecycle", "ReportHealth") == (
        "*",
        Rate(1000, 2000),
    )
    with pytest.raises(ValueError, match="unknown method 'Register'"):
        host_rate_limits(Rate(1, 1), Register=Rate(1, 1))


def test_key_is_identity_else_peer_host() -> None:
    assert default_rate_limit_key(make_ctx(client_address="10.1.2.3:5555")) == "ip:10.1.2.3"
    assert default_rate_limit_key(make_ctx(client_address="::1:5555")) == "ip:::1"
    assert default_rate_limit_key(make_ctx(client_address=None)) == "ip:unknown"


async def test_interceptor_rejects_with_retry_after_hint() -> None:
    clock = FakeClock()
    interceptor = RateLimitInterceptor(
        RateLimitPolicy(Rate(2, 2), methods={"/kv.v1.KVService/Put": Rate(1, 1)}), clock=clock
    )
    ctx = make_ctx()
    await interceptor.on_start(ctx)
    interceptor.on_start_sync(ctx)
    with pytest.raises(ConnectError) as info:
        await interceptor.on_start(ctx)
    assert info.value.code is Code.RESOURCE_EXHAUSTED
    assert "rate limit exceeded for *" in info.value.message
    assert retry_after_of(info.value) == pytest.approx(0.5)
    assert ctx.response_headers["retry-after"] == "1"
    # Put has its own bucket and rule; another peer has its own bucket.
    await interceptor.on_start(make_ctx(method="Put"))
    await interceptor.on_start(make_ctx(client_address="10.9.9.9:1"))
    clock.advance(0.5)
    await interceptor.on_start(ctx)


def test_retry_info_round_trip() -> None:
    for seconds in (0.0, 0.001, 0.5, 2.25, 86400.0):
        error = ConnectError(Code.RESOURCE_EXHAUSTED, "x", [retry_after_detail(seconds)])
        assert retry_after_of(error) == pytest.approx(seconds)
    assert retry_after_of(ConnectError(Code.RESOURCE_EXHAUSTED, "x")) is None


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
async def test_limits_per_identity_over_the_wire(protocol: ProtocolType) -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(clock)

    class ById:
        def authenticate(self, ctx: RequestContext[Any, Any]) -> AuthIdentity:
            return AuthIdentity(ctx.request_headers["x-who"], "test")

    server = [
        ServerAuth(ById()),
        RateLimitInterceptor(RateLimitPolicy(Rate(1, 2)), limiter, clock=clock),
    ]
    service = KV()
    async with kv_client(service, server_interceptors=server, protocol=protocol) as client:
        for _ in range(2):
            await client.get(pb.GetRequest(key="x"), headers={"x-who": "a"})
        with ResponseMetadata() as meta, pytest.raises(ConnectError) as info:
            await client.get(pb.GetRequest(key="x"), headers={"x-who": "a"})
        assert info.value.code is Code.RESOURCE_EXHAUSTED
        assert retry_after_of(info.value) == pytest.approx(1.0)
        assert meta.headers.get("retry-after") == "1"
        await client.get(pb.GetRequest(key="x"), headers={"x-who": "b"})  # another identity
        clock.advance(1.0)
        await client.get(pb.GetRequest(key="x"), headers={"x-who": "a"})
    assert service.calls == 4
    assert sorted(k.split("|")[0] for k in limiter._buckets) == ["id:a", "id:b"]
