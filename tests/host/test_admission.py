"""Admission on a served host: join tokens, launch secrets, the allow-list, open registration,
and the rogue provider that used to register beside the real one."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pyqwest
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from examples.kv.plugin import make_plugin as make_kv
from plugin_di.clock import FakeClock
from plugin_di.host import join_tokens
from plugin_di.host.admission import Admission, AdmissionPolicy, AllowEntry
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from plugin_di.plugin.definition import Plugin, Service
from plugin_di.plugin.host_client import HostClient
from tests.support.host import h2_client, logger_plugin

NOW = 1_700_000_000.0
KV_PATH = "/kv.v1.KVService/"


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def admitting_host(tmp_path: Path, wall: FakeClock) -> AsyncIterator[Host]:
    policy = AdmissionPolicy(
        key_file=join_tokens.create_key_file(tmp_path / "admission.key"),
        allow=(AllowEntry("gokv", frozenset({"kv"})),),
    )
    host = Host(
        HostConfig(sweep_interval=1e9), clock=FakeClock(), admission=Admission(policy, clock=wall)
    )
    await host.start("127.0.0.1:0")
    try:
        yield host
    finally:
        await host.stop()


@pytest.fixture
async def http() -> AsyncIterator[pyqwest.Client]:
    async with h2_client() as client:
        yield client


async def _refused(client: HostClient, self_id: str, token: str = "", **kw: object) -> ConnectError:
    with pytest.raises(ConnectError) as info:
        await client.handshake(self_id, join_token=token, **kw)  # type: ignore[arg-type]
    assert client.identity is None
    return info.value


async def test_a_join_token_admits_its_self_id_to_register_only_its_types(
    admitting_host: Host, http: pyqwest.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plugin_di.host")
    token = admitting_host.admission.issue_join_token("kv", ["kv", "cache"], ttl=600)
    client = HostClient(admitting_host.url, http_client=http)
    identity = await client.handshake("kv", plugins=[make_kv()], join_token=token)
    await client.register("kv", "1.0.0", KV_PATH)
    await client.register("cache", "1.0.0", KV_PATH)
    with pytest.raises(ConnectError) as info:  # a service type outside its list
        await client.register("logger", "1.0.0", "/l/")
    assert info.value.code is Code.PERMISSION_DENIED
    assert "its admission grants: cache, kv" in info.value.message
    assert re.search(
        rf"admitted {identity.runtime_id} by join token [0-9a-f]{{16}}, may provide cache, kv",
        caplog.text,
    )


async def test_an_expired_join_token_is_refused(
    admitting_host: Host, http: pyqwest.Client, wall: FakeClock
) -> None:
    token = admitting_host.admission.issue_join_token("kv", ["kv"], ttl=60)
    wall.advance(60)
    error = await _refused(HostClient(admitting_host.url, http_client=http), "kv", token)
    assert error.code is Code.UNAUTHENTICATED
    assert "has expired: ask the operator for a new one" in error.message


async def test_a_join_token_for_another_self_id_is_refused(
    admitting_host: Host, http: pyqwest.Client
) -> None:
    token = admitting_host.admission.issue_join_token("kv", ["kv"], ttl=60)
    error = await _refused(HostClient(admitting_host.url, http_client=http), "cache", token)
    assert error.code is Code.PERMISSION_DENIED
    assert error.message == "the join token admits self_id 'kv', not 'cache'"


async def test_tampered_and_foreign_tokens_are_refused(
    admitting_host: Host, http: pyqwest.Client
) -> None:
    token = admitting_host.admission.issue_join_token("kv", ["kv"], ttl=60)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    foreign = join_tokens.issue(b"x" * 32, "kv", ["kv"], ttl=60, now=NOW)
    for bad in (tampered, foreign):
        error = await _refused(HostClient(admitting_host.url, http_client=http), "kv", bad)
        assert error.code is Code.UNAUTHENTICATED
        assert "signature does not match this host's admission key" in error.message
    error = await _refused(HostClient(admitting_host.url, http_client=http), "kv", "guess")
    assert error.code is Code.UNAUTHENTICATED
    assert "neither a valid join token nor the launch secret" in error.message


async def test_a_handshake_without_a_credential_is_refused_saying_what_to_do(
    admitting_host: Host, http: pyqwest.Client
) -> None:
    error = await _refused(HostClient(admitting_host.url, http_client=http), "kv")
    assert error.code is Code.UNAUTHENTICATED
    assert error.message.startswith("plugin 'kv' is not admitted: the host admits a plugin")
    for hint in ("PLUGIN_DI_JOIN_TOKEN", "plugin-di join-token --self-id kv", "--allow-cert",
                 "plugin-di host --allow kv=TYPES"):  # fmt: skip
        assert hint in error.message
    # a handshake that asks for no identity only negotiates, and stays open
    answer = await HostClient(admitting_host.url, http_client=http)._handshake.handshake(
        _negotiation()
    )
    assert answer.runtime_id == ""


def _negotiation() -> object:
    from plugin_di.gen.connectplugin.v1 import handshake_pb2
    from plugin_di.plugin.env import DEFAULT_MAGIC_COOKIE_KEY, DEFAULT_MAGIC_COOKIE_VALUE

    return handshake_pb2.HandshakeRequest(
        core_protocol_version=1,
        app_protocol_version=1,
        magic_cookie_key=DEFAULT_MAGIC_COOKIE_KEY,
        magic_cookie_value=DEFAULT_MAGIC_COOKIE_VALUE,
    )


async def test_the_allow_list_admits_a_self_id_without_a_credential(
    admitting_host: Host, http: pyqwest.Client
) -> None:
    client = HostClient(admitting_host.url, http_client=http)
    await client.handshake("gokv")  # declares nothing, as a connect-plugin-go plugin
    await client.register("kv", "1.0.0", KV_PATH)
    with pytest.raises(ConnectError) as info:
        await client.register("cache", "1.0.0", KV_PATH)
    assert info.value.code is Code.PERMISSION_DENIED


async def test_a_launch_secret_admits_until_the_launcher_forgets_it(
    admitting_host: Host, http: pyqwest.Client
) -> None:
    forget = admitting_host.admission.expect_launch("s3cret-of-this-launch", "kv", ["kv"])
    wrong = await _refused(
        HostClient(admitting_host.url, http_client=http), "cache", "s3cret-of-this-launch"
    )
    assert wrong.code is Code.PERMISSION_DENIED
    assert wrong.message == "the launch secret admits self_id 'kv', not 'cache'"
    client = HostClient(admitting_host.url, http_client=http)
    await client.handshake("kv", join_token="s3cret-of-this-launch")
    await client.register("kv", "1.0.0", KV_PATH)
    forget()
    gone = await _refused(
        HostClient(admitting_host.url, http_client=http), "kv", "s3cret-of-this-launch"
    )
    assert gone.code is Code.UNAUTHENTICATED


def _rogue_kv() -> Plugin:
    kv = make_kv().services[0]
    return Plugin(
        name="rogue",
        version="9.9.9",
        services=[Service(kv.application, kv.client, version="9.9.9")],
    )


async def test_a_rogue_provider_cannot_register_beside_the_real_one(
    admitting_host: Host, http: pyqwest.Client
) -> None:
    real = HostClient(admitting_host.url, http_client=http)
    token = admitting_host.admission.issue_join_token("kv", ["kv"], ttl=600)
    await real.handshake("kv", plugins=[make_kv()], join_token=token)
    await real.register("kv", "1.0.0", KV_PATH)
    rogue = _rogue_kv()
    # the claim plugin-di.provides=kv@9.9.9 admits nobody, whatever self_id it sends
    for self_id in ("rogue", "kv"):
        error = await _refused(
            HostClient(admitting_host.url, http_client=http), self_id, plugins=[rogue]
        )
        assert error.code is Code.UNAUTHENTICATED
    # admitted as a consumer, its claim still grants nothing
    consumer = admitting_host.admission.issue_join_token("rogue", [], ttl=600)
    client = HostClient(admitting_host.url, http_client=http)
    identity = await client.handshake("rogue", plugins=[rogue], join_token=consumer)
    with pytest.raises(ConnectError) as info:
        await client.register("kv", "9.9.9", KV_PATH)
    assert info.value.code is Code.PERMISSION_DENIED
    record = admitting_host.registry.store.get_plugin(identity.runtime_id)
    assert record is not None
    assert record.provides == ()  # the claim outside the grant is not even recorded
    providers = admitting_host.registry.providers("kv")
    assert [(p.runtime_id, p.version) for p in providers] == [(real.identity.runtime_id, "1.0.0")]  # type: ignore[union-attr]


async def test_a_host_without_a_key_accepts_no_join_token(http: pyqwest.Client) -> None:
    host = Host(HostConfig(sweep_interval=1e9), clock=FakeClock())
    await host.start("127.0.0.1:0")
    try:
        token = join_tokens.issue(b"x" * 32, "kv", ["kv"], ttl=60, now=NOW)
        error = await _refused(HostClient(host.url, http_client=http), "kv", token)
        assert error.code is Code.UNAUTHENTICATED
        assert "accepts no join tokens: start it with an admission key file" in error.message
    finally:
        await host.stop()


async def test_open_registration_admits_anyone_and_warns_at_start(
    http: pyqwest.Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = AdmissionPolicy(key_file=join_tokens.create_key_file(tmp_path / "k"))
    host = Host(
        HostConfig(sweep_interval=1e9),
        clock=FakeClock(),
        admission=dataclasses.replace(policy, open_registration=True),
    )
    await host.start("127.0.0.1:0")
    try:
        assert re.search(
            rf"WARNING .*open registration: anyone who reaches {host.url} may join and register "
            "any service type; for development only",
            caplog.text,
        )
        anyone = HostClient(host.url, http_client=http)
        await anyone.handshake("anyone")
        for service_type in ("kv", "logger", "secrets"):
            await anyone.register(service_type, "1.0.0", "/x/")
        # a credential still binds its holder to what it grants
        token = host.admission.issue_join_token("kv", ["kv"], ttl=60)
        bound = HostClient(host.url, http_client=http)
        await bound.handshake("kv", plugins=[logger_plugin()], join_token=token)
        with pytest.raises(ConnectError) as info:
            await bound.register("logger", "1.0.0", "/l/")
        assert info.value.code is Code.PERMISSION_DENIED
    finally:
        await host.stop()


def test_allow_entries_are_checked() -> None:
    assert AllowEntry.parse("GoKV=kv, cache") == AllowEntry("gokv", frozenset({"kv", "cache"}))
    assert AllowEntry.parse("app=") == AllowEntry("app")
    for bad, error in (
        ("kv", "expected SELF_ID=TYPE"),
        ("../x=kv", "self_id"),
        ("kv=a/b", "provides"),
    ):
        with pytest.raises(ValueError, match=re.escape(error)):
            AllowEntry.parse(bad, "--allow")
