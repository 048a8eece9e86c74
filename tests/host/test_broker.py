"""Capability broker: grants through endpoint_url, expiry (FakeClock), revocation, errors."""

from __future__ import annotations

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType

from plugin_di.clock import FakeClock
from plugin_di.gen.capability.logger.v1 import logger_pb2
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from plugin_di.plugin.host_client import HostClient
from tests.support.host import ADMISSION, NO_GZIP, RecordingLogger, h2_client, logger_plugin


async def test_grant_calls_capability_then_expires(host: Host, clock: FakeClock) -> None:
    recorder = RecordingLogger()
    host.register_capability("logger", "1.2.0", logger_plugin(recorder))
    async with h2_client() as http:
        plugin = HostClient(host.url, http_client=http)
        await plugin.handshake("cache")
        grant = await plugin.request_capability("logger", min_version="1.0.0")
        assert grant.capability_type == "logger"
        assert grant.version == "1.2.0"
        assert grant.endpoint_url == f"{host.url}/capabilities/logger/{grant.grant_id}"
        assert len(grant.bearer_token) == 44
        headers = {"authorization": f"Bearer {grant.bearer_token}"}
        for protocol in ProtocolType:
            client = LoggerClient(
                grant.endpoint_url, http_client=http, protocol=protocol, **NO_GZIP
            )
            await client.log(
                logger_pb2.LogRequest(level="info", message=protocol.name), headers=headers
            )
        assert recorder.lines == ["[info] CONNECT", "[info] GRPC", "[info] GRPC_WEB"]
        assert "authorization" not in recorder.headers[-1]

        client = LoggerClient(grant.endpoint_url, http_client=http, **NO_GZIP)
        for bad, expected in [
            ({}, "missing"),
            ({"authorization": "Bearer " + "x" * 44}, "invalid"),
        ]:
            with pytest.raises(ConnectError) as info:
                await client.log(logger_pb2.LogRequest(message="no"), headers=bad)
            assert info.value.code is Code.UNAUTHENTICATED
            assert expected in info.value.message

        clock.advance(3600)
        with pytest.raises(ConnectError) as info:
            await client.log(logger_pb2.LogRequest(message="late"), headers=headers)
        assert info.value.code is Code.UNAUTHENTICATED
        assert "expired" in info.value.message
        with pytest.raises(ConnectError) as info:
            await client.log(logger_pb2.LogRequest(message="later"), headers=headers)
        assert "unknown capability grant" in info.value.message  # the expired grant was purged
        assert host.broker.grant_count() == 0


async def test_unknown_or_too_old_capability_and_revocation(host: Host) -> None:
    host.register_capability("logger", "1.0.0", logger_plugin())
    async with h2_client() as http:
        plugin = HostClient(host.url, http_client=http)
        identity = await plugin.handshake("cache")
        for kind, version in [("metrics", ""), ("logger", "2.0.0")]:
            with pytest.raises(ConnectError) as info:
                await plugin.request_capability(kind, min_version=version)
            assert info.value.code is Code.NOT_FOUND
        grant = await plugin.request_capability("logger")
        assert host.broker.grant_count() == 1
        host.forget(identity.runtime_id)
        assert host.broker.grant_count() == 0
        client = LoggerClient(grant.endpoint_url, http_client=http, **NO_GZIP)
        with pytest.raises(ConnectError) as info:
            await client.log(
                logger_pb2.LogRequest(message="x"),
                headers={"authorization": f"Bearer {grant.bearer_token}"},
            )
        assert info.value.code is Code.UNAUTHENTICATED


async def test_handshake_advertises_capabilities(host: Host) -> None:
    host.register_capability("logger", "1.0.0", logger_plugin())
    caps = host.broker.capabilities()
    assert [(c.type, c.version, c.endpoint) for c in caps] == [("logger", "1.0.0", host.url)]


async def test_sweeper_purges_expired_tokens_and_grants() -> None:
    clock = FakeClock()
    host = Host(
        HostConfig(runtime_token_ttl=100, capability_grant_ttl=50, sweep_interval=60),
        clock=clock,
        admission=ADMISSION,
    )
    host.register_capability("logger", "1.0.0", logger_plugin())
    await host.start()
    try:
        async with h2_client() as http:
            plugin = HostClient(host.url, http_client=http)
            await plugin.handshake("cache")
            await plugin.request_capability("logger")
            clock.advance(60)  # the sweeper wakes: the grant (50 s) is gone, the token (100 s) not
            await _settle()
            assert host.broker.grant_count() == 0
            assert len(host.tokens) == 1
            clock.advance(60)
            await _settle()
            assert len(host.tokens) == 0
    finally:
        await host.stop()


async def _settle() -> None:
    import asyncio

    for _ in range(5):
        await asyncio.sleep(0)
