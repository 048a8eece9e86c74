"""Auth interceptors: client credentials, server checks on all three protocols, identity."""

from __future__ import annotations

import hmac
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from connectrpc.request import RequestContext

from plugin_di.clock import FakeClock
from plugin_di.host.tokens import TokenStore
from plugin_di.rpc.interceptors.auth import (
    AuthIdentity,
    BearerAuthenticator,
    RuntimeTokenAuthenticator,
    ServerAuth,
    TokenValidator,
    api_key_authenticator,
    current_identity,
    require_identity,
)
from plugin_di.rpc.interceptors.credentials import (
    BearerClient,
    ClientAuth,
    RuntimeCredentials,
    api_key_client,
)
from tests.rpc.interceptors.support import PROTOCOLS, kv_client, make_ctx, pb
from tests.support.kv import KV


class Calls:
    """An authenticator that records being asked."""

    def __init__(self, result: AuthIdentity | None) -> None:
        self.result = result
        self.asked = 0

    def authenticate(self, ctx: RequestContext[Any, Any]) -> AuthIdentity:
        self.asked += 1
        if self.result is None:
            raise ConnectError(Code.UNAUTHENTICATED, "nope")
        return self.result


async def test_client_auth_reads_credentials_at_call_time() -> None:
    creds = RuntimeCredentials()
    auth = ClientAuth(creds)
    ctx = make_ctx()
    await auth.on_start(ctx)
    assert "authorization" not in ctx.request_headers  # no identity yet: nothing sent
    creds.set("kv-1", "tok-1")
    await auth.on_start(ctx)
    assert ctx.request_headers["authorization"] == "Bearer tok-1"
    assert ctx.request_headers["x-plugin-runtime-id"] == "kv-1"
    creds.set("kv-2", "tok-2")  # SetRuntimeIdentity at runtime
    auth.on_start_sync(ctx)
    assert ctx.request_headers["authorization"] == "Bearer tok-2"
    assert ctx.request_headers["x-plugin-runtime-id"] == "kv-2"


async def test_bearer_and_api_key_clients() -> None:
    tokens = iter(["g1", None, "g2"])
    grant = BearerClient(lambda: next(tokens))
    ctx = make_ctx()
    await grant.on_start(ctx)
    assert ctx.request_headers["authorization"] == "Bearer g1"
    ctx = make_ctx()
    await grant.on_start(ctx)
    assert "authorization" not in ctx.request_headers
    key = api_key_client("k-123")
    await key.on_start(ctx)
    assert ctx.request_headers["x-api-key"] == "k-123"
    custom = BearerClient("my-token", header="x-custom-auth", prefix="Token ")
    custom.on_start_sync(ctx)
    assert ctx.request_headers["x-custom-auth"] == "Token my-token"


@pytest.fixture
def store() -> TokenStore:
    return TokenStore(ttl=60.0, clock=FakeClock())


def test_token_store_satisfies_the_validator_protocol(store: TokenStore) -> None:
    assert isinstance(store, TokenValidator)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
async def test_runtime_token_auth_over_each_protocol(
    store: TokenStore, protocol: ProtocolType
) -> None:
    ident = store.issue("kv")
    server = [ServerAuth(RuntimeTokenAuthenticator(store))]
    service = KV(watch_values="identity")
    good = RuntimeCredentials()
    good.set(ident.runtime_id, ident.token)
    async with kv_client(
        service,
        server_interceptors=server,
        client_interceptors=[ClientAuth(good)],
        protocol=protocol,
    ) as client:
        resp = await client.get(pb.GetRequest(key="whoami"))
        assert resp.value == f"runtime-token:{ident.runtime_id}".encode()
        await client.put(pb.PutRequest(key="a", value=b"1"))
        events = [e async for e in client.watch(pb.WatchRequest(prefix=""))]
        assert [(e.key, e.value) for e in events] == [("a", ident.runtime_id.encode())]
    calls_before = service.calls

    bad_cases: list[tuple[list[Any], str]] = [
        ([], "missing x-plugin-runtime-id header"),
        ([ClientAuth(RuntimeCredentials())], "missing x-plugin-runtime-id header"),
        (
            [ClientAuth(RuntimeCredentials()), BearerClient(ident.token)],
            "missing x-plugin-runtime-id header",
        ),
        ([_creds(ident.runtime_id, "wrong-token")], "invalid or expired runtime token"),
        ([_creds("someone-else", ident.token)], "invalid or expired runtime token"),
    ]
    for interceptors, message in bad_cases:
        async with kv_client(
            service,
            server_interceptors=server,
            client_interceptors=interceptors,
            protocol=protocol,
        ) as client:
            with pytest.raises(ConnectError) as info:
                await client.get(pb.GetRequest(key="whoami"))
            assert info.value.code is Code.UNAUTHENTICATED
            assert info.value.message == message
            with pytest.raises(ConnectError) as info:
                _ = [e async for e in client.watch(pb.WatchRequest())]
            assert info.value.code is Code.UNAUTHENTICATED
    assert service.calls == calls_before  # no handler ran for a rejected call


def _creds(runtime_id: str, token: str) -> ClientAuth:
    source = RuntimeCredentials()
    source.set(runtime_id, token)
    return ClientAuth(source)


async def test_expired_runtime_token_is_rejected() -> None:
    clock = FakeClock()
    store = TokenStore(ttl=10.0, clock=clock)
    ident = store.issue("kv")
    server = [ServerAuth(RuntimeTokenAuthenticator(store))]
    client_side = [_creds(ident.runtime_id, ident.token)]
    async with kv_client(KV(), server_interceptors=server, client_interceptors=client_side) as c:
        assert (await c.get(pb.GetRequest(key="whoami"))).found
        clock.advance(10.0)
        with pytest.raises(ConnectError, match="invalid or expired runtime token"):
            await c.get(pb.GetRequest(key="whoami"))


def test_wrong_prefix_and_empty_token() -> None:
    auth = BearerAuthenticator(lambda token: "user" if token == "t" else None)
    for headers, message in [
        ({}, "missing authorization header"),
        ({"authorization": "Basic dTpw"}, "invalid token format, expected 'Bearer' prefix"),
        ({"authorization": "Bearer "}, "empty token in authorization header"),
        ({"authorization": "Bearer x"}, "invalid bearer credentials"),
    ]:
        with pytest.raises(ConnectError) as info:
            auth.authenticate(make_ctx(headers=headers))
        assert info.value.code is Code.UNAUTHENTICATED
        assert info.value.message == message
    assert auth.authenticate(make_ctx(headers={"authorization": "Bearer t"})) == AuthIdentity(
        "user", "bearer"
    )


def test_validator_exceptions_do_not_leak(caplog: pytest.LogCaptureFixture) -> None:
    def explode(token: str) -> str:
        raise RuntimeError("db password=hunter2")

    class Broken:
        def validate(self, runtime_id: str, token: str) -> bool:
            raise RuntimeError("db password=hunter2")

    ctx = make_ctx(headers={"authorization": "Bearer t", "x-plugin-runtime-id": "kv-1"})
    for auth in (BearerAuthenticator(explode), RuntimeTokenAuthenticator(Broken())):
        with pytest.raises(ConnectError) as info:
            auth.authenticate(ctx)
        assert info.value.code is Code.INTERNAL
        assert "hunter2" not in info.value.message
    assert "validator failed" in caplog.text


def test_non_ascii_credentials_are_unauthenticated_not_internal() -> None:
    # hmac.compare_digest raises TypeError on non-ASCII strings: a validator written that way
    # must still see only ASCII, so a bad credential stays UNAUTHENTICATED.
    def strict(token: str) -> str | None:
        return "user" if hmac.compare_digest(token, "secret") else None

    class Strict:
        def validate(self, runtime_id: str, token: str) -> bool:
            return hmac.compare_digest(runtime_id + token, "kv-1secret")

    for auth, headers in [
        (BearerAuthenticator(strict), {"authorization": "Bearer s\u00e9cret"}),
        (
            RuntimeTokenAuthenticator(Strict()),
            {"authorization": "Bearer s\u00e9cret", "x-plugin-runtime-id": "kv-1"},
        ),
        (
            RuntimeTokenAuthenticator(Strict()),
            {"authorization": "Bearer secret", "x-plugin-runtime-id": "kv-\u00e9"},
        ),
    ]:
        with pytest.raises(ConnectError) as info:
            auth.authenticate(make_ctx(headers=headers))
        assert info.value.code is Code.UNAUTHENTICATED
        assert "not ASCII" in info.value.message


async def test_api_key_scheme_for_user_plugins() -> None:
    keys = {"k-123": AuthIdentity("service-account", "api-key", {"role": "reader"})}
    server = [ServerAuth(api_key_authenticator(keys.get))]
    async with kv_client(
        KV(), server_interceptors=server, client_interceptors=[api_key_client("k-123")]
    ) as client:
        assert (await client.get(pb.GetRequest(key="whoami"))).value == b"api-key:service-account"
    async with kv_client(
        KV(), server_interceptors=server, client_interceptors=[api_key_client("k-999")]
    ) as client:
        with pytest.raises(ConnectError, match="invalid api-key credentials"):
            await client.get(pb.GetRequest(key="whoami"))


def test_server_auth_any_first_wins_and_falls_back() -> None:
    first, second = Calls(AuthIdentity("a", "one")), Calls(AuthIdentity("b", "two"))
    assert ServerAuth(first, second).authenticate(make_ctx()) == AuthIdentity("a", "one")
    assert (first.asked, second.asked) == (1, 0)

    failing = Calls(None)
    assert ServerAuth(failing, second).authenticate(make_ctx()) == AuthIdentity("b", "two")
    with pytest.raises(ConnectError, match="nope"):
        ServerAuth(Calls(None), Calls(None)).authenticate(make_ctx())


def test_server_auth_all_requires_every_authenticator() -> None:
    mtls = Calls(AuthIdentity("kv", "mtls", {"fingerprint": "ab"}))
    token = Calls(AuthIdentity("kv-1", "runtime-token", {"x": "1"}))
    both = ServerAuth(token, mtls, mode="all").authenticate(make_ctx())
    assert both == AuthIdentity("kv-1", "runtime-token", {"fingerprint": "ab", "x": "1"})
    with pytest.raises(ConnectError, match="nope"):
        ServerAuth(token, Calls(None), mode="all").authenticate(make_ctx())


async def test_public_procedures_skip_auth() -> None:
    server = [ServerAuth(Calls(None), public=["/kv.v1.KVService/List"])]
    service = KV()
    async with kv_client(service, server_interceptors=server) as client:
        assert (await client.list(pb.ListRequest())).keys == []
        with pytest.raises(ConnectError, match="nope"):
            await client.get(pb.GetRequest(key="whoami"))
    auth = ServerAuth(Calls(None), public=["kv.v1.KVService"])
    assert auth.authenticate(make_ctx()) is None


async def test_identity_is_scoped_to_the_call() -> None:
    auth = ServerAuth(Calls(AuthIdentity("kv-1", "runtime-token")))
    ctx = make_ctx()
    assert current_identity() is None
    with pytest.raises(ConnectError) as info:
        require_identity()
    assert info.value.code is Code.UNAUTHENTICATED
    token = await auth.on_start(ctx)
    assert require_identity().identity == "kv-1"
    await auth.on_end(token, ctx, None)
    assert current_identity() is None
    token = auth.on_start_sync(ctx)
    assert require_identity().identity == "kv-1"
    auth.on_end_sync(token, ctx, None)
    assert current_identity() is None


def test_server_auth_needs_an_authenticator() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ServerAuth()
    with pytest.raises(ValueError, match="'any' or 'all'"):
        ServerAuth(Calls(None), mode="every")  # type: ignore[arg-type]
