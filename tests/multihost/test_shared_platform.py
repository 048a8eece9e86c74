"""Two hosts, one platform: what is done through one holds on the other (real Redis)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin as make_kv_plugin
from plugin_di.gen.capability.logger.v1 import logger_pb2
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.host import join_tokens
from plugin_di.host.admission import AdmissionPolicy
from plugin_di.host.config import HostConfig
from plugin_di.host.shared.config import StoreConfig
from plugin_di.host.tracker import UNHEALTHY
from plugin_di.plugin.host_client import HostClient
from plugin_di.rpc.interceptors.ratelimit import Rate
from tests.multihost.support.hosts import eventually, hosts_on
from tests.support.host import NO_GZIP, h2_client, logger_plugin, served

KV_PATH = "/kv.v1.KVService/"


async def test_registered_through_one_discovered_and_routed_through_the_other(
    store: StoreConfig,
) -> None:
    kv = make_kv_plugin()
    async with hosts_on(store) as (a, b), served(kv) as (_, url), h2_client() as http:
        provider = HostClient(a.url, http_client=http)
        await provider.handshake("kv", plugins=[kv])
        await provider.register("kv", "1.0.0", KV_PATH, {"base_url": url})
        caller = HostClient(b.url, http_client=http)
        await caller.handshake("app")
        found = await caller.discover("kv")
        assert found.endpoint.provider_id == provider.identity.runtime_id  # type: ignore[union-attr]
        client = caller.routed_client(KVServiceClient, found.endpoint)
        await client.put(kv_pb2.PutRequest(key="k", value=b"v"), timeout_ms=5000)
        got = await client.get(kv_pb2.GetRequest(key="k"), timeout_ms=5000)
        assert got.value == b"v"
        # the caller's identity, issued by b, is valid on a too
        back = HostClient(a.url, http_client=http, identity=caller.identity)
        assert (await back.discover("kv")).endpoint.provider_id == found.endpoint.provider_id


async def test_a_watch_on_one_host_sees_changes_made_through_the_other(store: StoreConfig) -> None:
    async with hosts_on(store) as (a, b), h2_client() as http:
        observer = HostClient(b.url, http_client=http)
        await observer.handshake("observer")
        watch = observer.watch("logger")

        async def state() -> int:
            async with __import__("asyncio").timeout(5):
                event: registry_pb2.WatchServiceEvent = await anext(watch)  # type: ignore[call-overload]
            return int(event.state)

        assert await state() == registry_pb2.SERVICE_STATE_UNAVAILABLE
        provider = HostClient(a.url, http_client=http)
        await provider.handshake("logger", plugins=[logger_plugin()])
        reg = await provider.register(
            "logger", "1.0.0", "/capability.logger.v1.Logger/", {"base_url": "http://127.0.0.1:9"}
        )
        assert await state() == registry_pb2.SERVICE_STATE_AVAILABLE
        await provider.report_health(UNHEALTHY, "db down")
        assert await state() == registry_pb2.SERVICE_STATE_UNAVAILABLE
        with pytest.raises(ConnectError) as info:
            await observer.discover("logger")
        assert "all unhealthy" in info.value.message
        await provider.unregister(reg)
        assert await state() == registry_pb2.SERVICE_STATE_UNAVAILABLE
        await watch.aclose()  # type: ignore[attr-defined]


async def test_admissions_and_revocations_made_on_one_host_hold_on_the_other(
    store: StoreConfig,
) -> None:
    async with hosts_on(store) as (a, b), h2_client() as http:
        late = HostClient(b.url, http_client=http)
        with pytest.raises(ConnectError) as info:
            await late.handshake("late")
        assert info.value.code is Code.UNAUTHENTICATED
        a.admission.allow("late", ["kv"])
        await a.commit()
        await eventually(lambda: "late" in b.admission.state.allowed, what="admission replicated")
        identity = await late.handshake("late")
        assert identity.runtime_id.startswith("late-")
        await late.register("kv", "1.0.0", KV_PATH, {"base_url": "http://127.0.0.1:9"})

        # revoking the identity on a: b refuses its token at once it hears of it
        assert a.tokens.revoke(identity.runtime_id)
        await a.commit()
        await eventually(lambda: identity.runtime_id not in b.tokens, what="revocation replicated")
        with pytest.raises(ConnectError) as info:
            await late.discover("kv")
        assert info.value.code is Code.UNAUTHENTICATED

        assert a.admission.withdraw("late")
        await a.commit()
        await eventually(lambda: "late" not in b.admission.state.allowed, what="withdrawal")
        with pytest.raises(ConnectError) as info:
            await HostClient(b.url, http_client=http).handshake("late")
        assert info.value.code is Code.UNAUTHENTICATED


async def test_a_grant_issued_by_one_host_opens_the_capability_on_the_other(
    store: StoreConfig,
) -> None:
    async with hosts_on(store) as (a, b), h2_client() as http:
        for host in (a, b):
            host.register_capability("logger", "1.0.0", logger_plugin())
        plugin = HostClient(a.url, http_client=http)
        await plugin.handshake("cache")
        grant = await plugin.request_capability("logger")
        assert b.broker.grant_count() == 1  # committed before the answer, replicated
        on_b = LoggerClient(f"{b.url}/capabilities/logger/{grant.grant_id}", http_client=http,
                            **NO_GZIP)  # fmt: skip
        bearer = {"authorization": f"Bearer {grant.bearer_token}"}
        await eventually(lambda: grant.grant_id in b.broker._grants, what="grant replicated")
        await on_b.log(logger_pb2.LogRequest(message="through b"), headers=bearer)
        with pytest.raises(ConnectError) as info:
            await on_b.log(
                logger_pb2.LogRequest(message="x"), headers={"authorization": "Bearer x"}
            )
        assert info.value.code is Code.UNAUTHENTICATED
        a.forget(plugin.identity.runtime_id)  # type: ignore[union-attr]  # its grants go too
        await a.commit()
        await eventually(lambda: b.broker.grant_count() == 0, what="grant revoked on b")


async def test_one_rate_limit_across_hosts(store: StoreConfig) -> None:
    rate = Rate(20.0, 10)
    kv = make_kv_plugin()
    async with (
        hosts_on(store, config=HostConfig(rate_limit=rate)) as hosts,
        served(kv) as (_, url),
        h2_client() as http,
    ):
        provider = HostClient(hosts[0].url, http_client=http)
        await provider.handshake("kv", plugins=[kv])
        await provider.register("kv", "1.0.0", KV_PATH, {"base_url": url})
        caller = HostClient(hosts[0].url, http_client=http)
        await caller.handshake("app")
        clients = []
        for host in hosts:
            on_host = HostClient(host.url, http_client=http, identity=caller.identity)
            found = await on_host.discover("kv")
            clients.append(on_host.routed_client(KVServiceClient, found.endpoint))
        admitted = 0
        refusals: list[Code] = []
        started = time.monotonic()
        for i in range(5000):  # alternate hosts for one second
            if time.monotonic() - started >= 1.0:
                break
            try:
                await clients[i % 2].get(kv_pb2.GetRequest(key="k"), timeout_ms=2000)
                admitted += 1
            except ConnectError as error:
                refusals.append(error.code)
        elapsed = time.monotonic() - started
    one_limit = rate.burst + rate.rps * elapsed
    tolerance = (len(hosts) - 1) * (rate.burst + rate.rps * store.sync_interval)
    assert refusals
    assert set(refusals) == {Code.RESOURCE_EXHAUSTED}
    # one host's limit, not two: each host alone would admit one_limit
    assert admitted <= one_limit + tolerance, (admitted, one_limit, tolerance)
    assert admitted >= 0.8 * one_limit, (admitted, one_limit)


async def test_a_join_token_revoked_on_one_host_is_refused_on_the_other(
    store: StoreConfig, tmp_path: Path
) -> None:
    key_file = join_tokens.create_key_file(tmp_path / "admission.key")
    policy = AdmissionPolicy(key_file=key_file)
    async with hosts_on(store, admission=policy) as (a, b), h2_client() as http:
        token = a.admission.issue_join_token("kv", ["kv"], ttl=600)
        claims = join_tokens.verify(token, join_tokens.load_keys(key_file), now=time.time())
        first = await HostClient(b.url, http_client=http).handshake("kv", join_token=token)
        assert first.runtime_id.startswith("kv-")
        a.admission.revoke_join_token(claims.token_id, until=claims.expires_at)
        await a.commit()
        await eventually(lambda: claims.token_id in b.admission.state.revoked, what="revoked")
        with pytest.raises(ConnectError) as info:
            await HostClient(b.url, http_client=http).handshake("kv", join_token=token)
        assert info.value.code is Code.UNAUTHENTICATED
        assert f"join token {claims.token_id} was revoked" in info.value.message


async def test_a_registration_never_outlives_its_plugin(store: StoreConfig) -> None:
    """The compare-and-set: a registration whose plugin is gone from the store is refused,
    and the host takes back what it applied locally."""
    async with hosts_on(store, count=1) as (a,), h2_client() as http:
        provider = HostClient(a.url, http_client=http)
        identity = await provider.handshake("kv", plugins=[make_kv_plugin()])
        assert a.shared is not None
        engine = a.shared.state.engine
        # the plugin's record vanishes from the store, as when its lease ends, before this
        # host heard of it
        await engine._client.hdel(engine.prefix + ":m:plugins", identity.runtime_id)
        with pytest.raises(ConnectError) as info:
            await provider.register("kv", "1.0.0", KV_PATH, {"base_url": "http://127.0.0.1:9"})
        assert info.value.code is Code.UNAUTHENTICATED
        assert "handshake with a host again" in info.value.message
        await eventually(lambda: not a.registry.store.registrations("kv"), what="undone")
        assert not await engine._client.hlen(engine.prefix + ":m:regs")
