"""The Host as a server: grpc health, reflection, in-memory reach, TLS, configured allow-lists."""

from __future__ import annotations

from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType

from plugin_di.clock import FakeClock
from plugin_di.gen.grpc.health.v1 import health_pb2
from plugin_di.gen.grpc.health.v1.health_connect import HealthClient
from plugin_di.host.admission import AdmissionPolicy, AllowEntry
from plugin_di.host.join_tokens import create_key_file
from plugin_di.host.server import Host
from plugin_di.plugin.host_client import HostClient
from plugin_di.rpc.tls import generate_ephemeral_cert
from tests.support.host import ADMISSION, NO_GZIP, h2_client, logger_plugin


async def test_grpc_health_and_reflection(host: Host) -> None:
    async with h2_client() as http:
        health = HealthClient(host.url, http_client=http, protocol=ProtocolType.GRPC, **NO_GZIP)
        response = await health.check(health_pb2.HealthCheckRequest())
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        body = b'{"listServices":""}'
        reflected = await http.post(
            host.url + "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            {"content-type": "application/connect+json"},
            b"\x00" + len(body).to_bytes(4, "big") + body,
        )
        assert reflected.status == 200
        for name in (
            "connectplugin.v1.ServiceRegistry",
            "connectplugin.v1.HandshakeService",
            "connectplugin.v1.CapabilityBroker",
            "connectplugin.v1.PluginLifecycle",
        ):
            assert name.encode() in reflected.content


async def test_in_memory_plugin_reaches_host_without_a_socket() -> None:
    host = Host(clock=FakeClock(), admission=ADMISSION)  # never started: no socket at all
    client = HostClient(host.url, http_client=host.in_memory_client())
    identity = await client.handshake("logger", plugins=[logger_plugin()])
    await client.register("logger", "1.0.0", "/capability.logger.v1.Logger/")
    found = await client.discover("logger")
    assert found.endpoint.provider_id == identity.runtime_id
    assert host.url == "http://in-memory.host"


async def test_host_over_tls(tmp_path: Path) -> None:
    import pyqwest

    pair = generate_ephemeral_cert("host")
    base = tmp_path
    (base / "c.pem").write_bytes(pair.cert_pem)
    (base / "k.pem").write_bytes(pair.key_pem)
    host = Host(clock=FakeClock(), admission=ADMISSION)
    url = await host.start(certfile=base / "c.pem", keyfile=base / "k.pem")
    assert url.startswith("https://127.0.0.1:")
    transport = pyqwest.HTTPTransport(tls_ca_cert=pair.cert_pem)
    try:
        client = HostClient(url, http_client=pyqwest.Client(transport))
        identity = await client.handshake("app")
        assert host.tokens.validate(identity.runtime_id, identity.runtime_token)
    finally:
        await transport.aclose()
        await host.stop()


async def test_an_allow_list_entry_grants_its_types_and_nothing_else() -> None:
    policy = AdmissionPolicy(
        allow=(AllowEntry("logger", frozenset({"logger"})), AllowEntry("mute"))
    )
    host = Host(clock=FakeClock(), admission=policy)
    http = host.in_memory_client()
    logger = HostClient(host.url, http_client=http)
    await logger.handshake("logger", plugins=[logger_plugin()])
    await logger.register("logger", "1.0.0", "/l/")
    with pytest.raises(ConnectError) as info:
        await logger.register("metrics", "1.0.0", "/m/")
    assert info.value.code is Code.PERMISSION_DENIED
    mute = HostClient(host.url, http_client=http)  # claims logger, granted nothing
    await mute.handshake("mute", plugins=[logger_plugin()])
    with pytest.raises(ConnectError) as info:
        await mute.register("logger", "1.0.0", "/l/")
    assert info.value.code is Code.PERMISSION_DENIED
    assert "its admission grants: nothing" in info.value.message


def test_host_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGIN_DI_RUNTIME_TOKEN_TTL", "120")
    monkeypatch.setenv("PLUGIN_DI_CAPABILITY_GRANT_TTL", "30")
    host = Host.from_settings()
    assert host.tokens.ttl == 120
    assert host.broker.ttl == 30
    default = Host.from_settings(settings=None, admission=AdmissionPolicy(open_registration=True))
    assert default.registry.open_registration
    assert not host.registry.open_registration


def test_host_admission_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = create_key_file(tmp_path / "admission.key")
    monkeypatch.setenv("PLUGIN_DI_ADMISSION_KEY_FILE", str(key))
    monkeypatch.setenv("PLUGIN_DI_ADMISSION_ALLOW", "gokv=kv;app= cache=cache,kv")
    monkeypatch.setenv("PLUGIN_DI_ADMISSION_ALLOW_CERT", "edge=kv")
    monkeypatch.setenv("PLUGIN_DI_OPEN_REGISTRATION", "1")
    policy = Host.from_settings().admission.policy
    assert policy.key_file == key
    assert policy.allow == (
        AllowEntry("gokv", frozenset({"kv"})),
        AllowEntry("app"),
        AllowEntry("cache", frozenset({"cache", "kv"})),
    )
    assert policy.allow_cert == (AllowEntry("edge", frozenset({"kv"})),)
    assert policy.open_registration
    monkeypatch.setenv("PLUGIN_DI_ADMISSION_ALLOW", "gokv")
    with pytest.raises(ValueError, match="PLUGIN_DI_ADMISSION_ALLOW 'gokv': expected SELF_ID="):
        Host.from_settings()
