"""The guard against ignored interceptors, and InterceptorChain: order and the whole chain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.host.tokens import TokenStore
from plugin_di.rpc.interceptors.auth import (
    RuntimeTokenAuthenticator,
    ServerAuth,
)
from plugin_di.rpc.interceptors.breaker import (
    BreakerConfig,
    CircuitBreakerInterceptor,
    CircuitState,
)
from plugin_di.rpc.interceptors.chain import InterceptorChain
from plugin_di.rpc.interceptors.credentials import (
    BearerClient,
    ClientAuth,
    RuntimeCredentials,
)
from plugin_di.rpc.interceptors.guard import check_interceptors
from plugin_di.rpc.interceptors.limits import HeaderLimits
from plugin_di.rpc.interceptors.ratelimit import Rate, RateLimitInterceptor, RateLimitPolicy
from plugin_di.rpc.interceptors.retry import RetryInterceptor, RetryPolicy
from plugin_di.rpc.tls import InsecureTransportError
from tests.rpc.interceptors.support import SteppingClock, kv_client, pb, unavailable
from tests.support.kv import KV

# --- guard ---------------------------------------------------------------------------------


class AsyncOnly:
    async def intercept_unary(self, call_next: Any, request: Any, ctx: Any) -> Any:
        return await call_next(request, ctx)


class SyncOnly:
    def intercept_unary_sync(self, call_next: Any, request: Any, ctx: Any) -> Any:
        return call_next(request, ctx)


class Misspelled:
    async def intercept(self, call_next: Any, request: Any, ctx: Any) -> Any:
        return await call_next(request, ctx)


class HalfMetadata:
    async def on_start(self, ctx: Any) -> None:
        return None


class NotAwaitable:
    def intercept_unary(self, call_next: Any, request: Any, ctx: Any) -> Any:
        return call_next(request, ctx)


class AsyncNamedSync:
    async def intercept_unary_sync(self, call_next: Any, request: Any, ctx: Any) -> Any:
        return call_next(request, ctx)


def test_guard_accepts_the_right_names() -> None:
    assert check_interceptors([AsyncOnly()])[0].__class__ is AsyncOnly
    check_interceptors([SyncOnly()], sync=True)
    both = ClientAuth(RuntimeCredentials())
    check_interceptors([both])
    check_interceptors([both], sync=True)


@pytest.mark.parametrize(
    ("obj", "sync", "message"),
    [
        (Misspelled(), False, "has none of the async interceptor methods"),
        (AsyncOnly(), True, "has only async method names, but it was given to a sync"),
        (SyncOnly(), False, "has only sync method names, but it was given to a async"),
        (HalfMetadata(), False, "defines only one of on_start/on_end"),
        (NotAwaitable(), False, "intercept_unary must be an async def"),
        (AsyncNamedSync(), True, "intercept_unary_sync must be a plain function"),
        (object(), True, "has none of the sync interceptor methods"),
    ],
)
def test_guard_rejects_what_connectrpc_would_ignore(obj: object, sync: bool, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        check_interceptors([obj], sync=sync)


def test_chain_checks_extras_at_construction() -> None:
    with pytest.raises(TypeError, match="Misspelled"):
        InterceptorChain(client_extra=[Misspelled()])
    with pytest.raises(TypeError, match="sync client or server"):
        InterceptorChain(sync=True, server_extra=[AsyncOnly()])


# --- order -------------------------------------------------------------------------------


def test_documented_order() -> None:
    logging_interceptor = AsyncOnly()
    chain = InterceptorChain(
        credentials=RuntimeCredentials(),
        bearer_token="grant",
        client_extra=[logging_interceptor],
        authenticators=[RuntimeTokenAuthenticator(TokenStore())],
        rate_limit=RateLimitPolicy(Rate(10, 20)),
        server_extra=[AsyncOnly()],
    )
    client = chain.client_interceptors("http://127.0.0.1:9000")
    assert client[0] is logging_interceptor
    assert [type(i) for i in client[1:]] == [
        ClientAuth,
        BearerClient,
        CircuitBreakerInterceptor,
        RetryInterceptor,
    ]
    server = chain.server_interceptors()
    assert [type(i) for i in server] == [HeaderLimits, ServerAuth, RateLimitInterceptor, AsyncOnly]
    plain = InterceptorChain(retry=None, breaker=None, header_limits=None)
    assert plain.client_interceptors("http://127.0.0.1:1") == []
    assert plain.server_interceptors() == []


def test_one_breaker_per_endpoint_reports_changes() -> None:
    seen: list[tuple[str, CircuitState, CircuitState]] = []
    chain = InterceptorChain(
        breaker=BreakerConfig(failure_threshold=1),
        on_breaker_state_change=lambda ep, old, new: seen.append((ep, old, new)),
    )
    chain.client_interceptors("http://127.0.0.1:1")
    chain.client_interceptors("http://127.0.0.1:1")
    chain.client_interceptors("http://127.0.0.1:2")
    assert sorted(chain.breakers) == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    breaker = chain.breakers["http://127.0.0.1:2"]
    breaker.record(breaker.acquire(), unavailable())
    assert seen == [("http://127.0.0.1:2", CircuitState.CLOSED, CircuitState.OPEN)]
    assert chain.breakers["http://127.0.0.1:1"].state is CircuitState.CLOSED


def test_credentials_never_go_in_plaintext_to_a_remote_address() -> None:
    chain = InterceptorChain(credentials=RuntimeCredentials())
    for safe in ("http://127.0.0.1:9", "https://192.0.2.1:9", "unix:///tmp/p.sock"):
        chain.client_interceptors(safe)
    with pytest.raises(InsecureTransportError, match=r"192\.0\.2\.1:9"):
        chain.client_interceptors("http://192.0.2.1:9")
    allowed = InterceptorChain(credentials=RuntimeCredentials(), allow_insecure_credentials=True)
    allowed.client_interceptors("http://192.0.2.1:9")
    InterceptorChain().client_interceptors("http://192.0.2.1:9")  # no credentials: a warning


def test_sync_chain() -> None:
    chain = InterceptorChain(
        sync=True,
        credentials=RuntimeCredentials(),
        authenticators=[RuntimeTokenAuthenticator(TokenStore())],
        rate_limit=RateLimitPolicy(Rate(1, 1)),
        client_extra=[SyncOnly()],
    )
    assert len(chain.client_interceptors("http://127.0.0.1:1")) == 4
    assert len(chain.server_interceptors()) == 3


# --- the whole chain over the wire ---------------------------------------------------------


class Recorder:
    """Outermost client interceptor: sees each logical call once."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def intercept_unary(
        self,
        call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]],
        request: Any,
        ctx: RequestContext[Any, Any],
    ) -> Any:
        self.calls.append(ctx.method.name)
        return await call_next(request, ctx)

    def intercept_server_stream(
        self, call_next: Callable[..., AsyncIterator[Any]], request: Any, ctx: Any
    ) -> AsyncIterator[Any]:
        self.calls.append(ctx.method.name)
        return call_next(request, ctx)


async def test_whole_chain_in_process() -> None:
    clock = SteppingClock()
    store = TokenStore(clock=clock)
    ident = store.issue("kv")
    creds = RuntimeCredentials()
    recorder = Recorder()
    chain = InterceptorChain(
        clock=clock,
        random=lambda: 0.5,
        credentials=creds,
        client_extra=[recorder],
        retry=RetryPolicy(max_attempts=3),
        breaker=BreakerConfig(failure_threshold=2),
        authenticators=[RuntimeTokenAuthenticator(store)],
        rate_limit=RateLimitPolicy(Rate(100, 100), methods={"/kv.v1.KVService/Put": Rate(1, 1)}),
    )
    endpoint = "http://localhost"
    service = KV()
    async with kv_client(
        service,
        server_interceptors=chain.server_interceptors(),
        client_interceptors=chain.client_interceptors(endpoint),
    ) as client:
        # Before SetRuntimeIdentity: rejected, not retried, not a breaker failure.
        with pytest.raises(ConnectError) as info:
            await client.get(pb.GetRequest(key="whoami"))
        assert info.value.code is Code.UNAUTHENTICATED
        creds.set(ident.runtime_id, ident.token)
        assert (await client.get(pb.GetRequest(key="whoami"))).value == (
            f"runtime-token:{ident.runtime_id}".encode()
        )
        # Rate limited: the retry waits for the hint (1 s at 1/s) and gets through.
        await client.put(pb.PutRequest(key="a", value=b"1"))
        clock.slept.clear()
        await client.put(pb.PutRequest(key="a", value=b"2"))
        assert clock.slept == pytest.approx([1.0])
        # Two transient failures are retried inside the breaker: one logical success.
        service.fail_next = [unavailable(), unavailable()]
        assert (await client.get(pb.GetRequest(key="a"))).value == b"2"
        breaker = chain.breakers[endpoint]
        assert breaker.state is CircuitState.CLOSED
        # Two logical failures (3 attempts each) open the breaker; then it fails fast.
        service.fail_next = [unavailable() for _ in range(6)]
        for _ in range(2):
            with pytest.raises(ConnectError):
                await client.get(pb.GetRequest(key="a"))
        assert chain.breakers[endpoint].state is CircuitState.OPEN
        calls = service.calls
        with pytest.raises(ConnectError, match="is open"):
            await client.get(pb.GetRequest(key="a"))
        assert service.calls == calls
        # Oversized headers are refused before auth.
        clock.advance(10)
        with pytest.raises(ConnectError) as info:
            await client.get(pb.GetRequest(key="a"), headers={"x-big": "v" * 9000})
        assert info.value.code is Code.INVALID_ARGUMENT
        assert info.value.message.startswith("headers[x-big]: value must be at most 8192")
    assert recorder.calls == ["Get", "Get", "Put", "Put", "Get", "Get", "Get", "Get", "Get"]
