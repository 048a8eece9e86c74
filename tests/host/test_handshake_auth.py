"""Host handshake (9.24 #1-3) and authentication on every host RPC."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.clock import FakeClock
from plugin_di.gen.connectplugin.v1 import handshake_pb2
from plugin_di.gen.connectplugin.v1.handshake_connect import HandshakeServiceClient
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from plugin_di.plugin.env import DEFAULT_MAGIC_COOKIE_KEY, DEFAULT_MAGIC_COOKIE_VALUE
from plugin_di.plugin.host_client import HostClient
from plugin_di.plugin.identity import RuntimeIdentity
from tests.support.host import ADMISSION, NO_GZIP, h2_client, logger_plugin


def _request(**kw: Any) -> handshake_pb2.HandshakeRequest:
    base: dict[str, Any] = {
        "core_protocol_version": 1,
        "app_protocol_version": 1,
        "magic_cookie_key": DEFAULT_MAGIC_COOKIE_KEY,
        "magic_cookie_value": DEFAULT_MAGIC_COOKIE_VALUE,
    }
    base.update(kw)
    return handshake_pb2.HandshakeRequest(**base)


async def test_handshake_checks_and_identity(host: Host) -> None:
    async with h2_client() as http:
        client = HandshakeServiceClient(host.url, http_client=http, **NO_GZIP)
        cases = [
            (_request(magic_cookie_value="nope"), Code.INVALID_ARGUMENT),
            (_request(app_protocol_version=2), Code.FAILED_PRECONDITION),
            (_request(core_protocol_version=2), Code.INVALID_ARGUMENT),
            (_request(self_id="../x"), Code.INVALID_ARGUMENT),
        ]
        for request, code in cases:
            with pytest.raises(ConnectError) as info:
                await client.handshake(request)
            assert info.value.code is code
        plain = await client.handshake(_request())
        assert plain.runtime_id == ""
        assert plain.runtime_token == ""
        assert plain.server_metadata["server_version"]
        response = await client.handshake(_request(self_id="cache"))
        assert re.fullmatch(r"cache-[0-9a-f]{8}", response.runtime_id)
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}=", response.runtime_token)
        assert host.tokens.validate(response.runtime_id, response.runtime_token)
        negotiated = await client.handshake(_request(app_protocol_versions=[1, 3]))
        assert negotiated.app_protocol_version == 1


async def test_token_expires_with_ttl_and_is_purged() -> None:
    clock = FakeClock()
    host = Host(HostConfig(runtime_token_ttl=0.1), clock=clock, admission=ADMISSION)
    await host.start()
    try:
        async with h2_client() as http:
            client = HostClient(host.url, http_client=http)
            await client.handshake("logger", plugins=[logger_plugin()])
            await client.register("logger", "1.0.0", "/capability.logger.v1.Logger/")
            clock.advance(0.1)
            with pytest.raises(ConnectError) as info:
                await client.discover("logger")
            assert info.value.code is Code.UNAUTHENTICATED
            assert "expired" in info.value.message
            assert client.identity is not None
            assert client.identity.runtime_id not in host.tokens
    finally:
        await host.stop()


Call = Callable[[HostClient], Awaitable[object]]


async def _watch_first(c: HostClient) -> object:
    async for event in c.watch("logger"):
        return event
    return None


CALLS: dict[str, Call] = {
    "RegisterService": lambda c: c.register("logger", "1.0.0", "/l/"),
    "UnregisterService": lambda c: c.unregister("reg-0000000000000000"),
    "DiscoverService": lambda c: c.discover("logger"),
    "WatchService": _watch_first,
    "ReportHealth": lambda c: c.report_health(1),
    "RequestCapability": lambda c: c.request_capability("logger"),
}


@pytest.mark.parametrize("rpc", sorted(CALLS))
async def test_every_host_rpc_requires_credentials(rpc: str) -> None:
    clock = FakeClock()
    host = Host(
        HostConfig(rate_limit=None, sweep_interval=1e9), clock=clock, admission=ADMISSION
    )  # limits are tested apart
    await host.start()
    try:
        await _check_credentials(host, clock, rpc)
    finally:
        await host.stop()


async def _check_credentials(host: Host, clock: FakeClock, rpc: str) -> None:
    async with h2_client() as http:
        good = HostClient(host.url, http_client=http)
        identity = await good.handshake("logger", plugins=[logger_plugin()])
        other = await HostClient(host.url, http_client=http).handshake("other")
        variants = {
            "missing": None,
            "wrong token": RuntimeIdentity(identity.runtime_id, other.runtime_token),
            "wrong id": RuntimeIdentity(other.runtime_id, identity.runtime_token),
            "unknown id": RuntimeIdentity("ghost-00000000", identity.runtime_token),
        }
        for label, creds in variants.items():
            client = HostClient(host.url, http_client=http, identity=creds)
            if creds is None:
                client.auth._identity = lambda: RuntimeIdentity("", "")  # no headers at all
            with pytest.raises(ConnectError) as info:
                await CALLS[rpc](client)
            assert info.value.code is Code.UNAUTHENTICATED, label
        clock.advance(24 * 3600)
        with pytest.raises(ConnectError) as info:
            await CALLS[rpc](good)
        assert info.value.code is Code.UNAUTHENTICATED


async def test_host_rpcs_are_rate_limited_per_caller(host: Host) -> None:
    async with h2_client() as http:
        client = HandshakeServiceClient(host.url, http_client=http, **NO_GZIP)
        for _ in range(20):  # Handshake: 10/s, burst 20, per IP; the FakeClock never refills
            await client.handshake(_request())
        with pytest.raises(ConnectError) as info:
            await client.handshake(_request())
        assert info.value.code is Code.RESOURCE_EXHAUSTED
        assert "HandshakeService/Handshake" in info.value.message
