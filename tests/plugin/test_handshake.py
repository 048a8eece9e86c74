"""Handshake: cookie, core version, version negotiation, plugin descriptions."""

from __future__ import annotations

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from examples.kv.plugin import make_plugin
from plugin_di.gen.connectplugin.v1 import handshake_pb2 as pb
from plugin_di.gen.connectplugin.v1.handshake_connect import (
    HandshakeServiceASGIApplication,
    HandshakeServiceClient,
)
from plugin_di.plugin.definition import Dependency, Plugin, PluginSet, Service
from plugin_di.plugin.direct import direct_client
from plugin_di.plugin.env import DEFAULT_MAGIC_COOKIE_KEY, DEFAULT_MAGIC_COOKIE_VALUE
from plugin_di.plugin.handshake import HandshakeServer, VersionMismatchError, negotiate_version


def _client(versions: tuple[int, ...] = (1,), **kwargs: str) -> HandshakeServiceClient:
    kv = make_plugin()
    kv = Plugin(
        name=kv.name,
        version="2.3.0",
        services=kv.services,
        requires=[Dependency("logger", min_version="1.0.0", required_for_startup=False)],
    )
    server = HandshakeServer(PluginSet([kv]), app_protocol_versions=versions, **kwargs)
    return direct_client(Service(HandshakeServiceASGIApplication, HandshakeServiceClient, server))


def _request(**fields: object) -> pb.HandshakeRequest:
    base: dict[str, object] = {
        "core_protocol_version": 1,
        "app_protocol_version": 1,
        "magic_cookie_key": DEFAULT_MAGIC_COOKIE_KEY,
        "magic_cookie_value": DEFAULT_MAGIC_COOKIE_VALUE,
        "requested_plugins": ["kv"],
    }
    base.update(fields)
    return pb.HandshakeRequest(**base)


def test_negotiate_picks_highest_common() -> None:
    assert negotiate_version([1, 2, 3], [2, 3, 4]) == 3
    with pytest.raises(VersionMismatchError) as info:
        negotiate_version([1, 2], [3, 4])
    assert "client speaks [1, 2]" in str(info.value)
    assert "plugin speaks [3, 4]" in str(info.value)


async def test_successful_handshake_describes_plugin() -> None:
    response = await _client().handshake(_request())
    assert response.core_protocol_version == 1
    assert response.app_protocol_version == 1
    assert response.server_metadata["server_version"]
    [info] = response.plugins
    assert (info.name, info.version, info.service_path) == ("kv", "2.3.0", "/kv.v1.KVService/")
    assert [(p.type, p.path) for p in info.provides] == [("kv", "/kv.v1.KVService/")]
    assert [(r.type, r.min_version, r.required_for_startup) for r in info.requires] == [
        ("logger", "1.0.0", False)
    ]


async def test_wrong_cookie_is_invalid_argument() -> None:
    with pytest.raises(ConnectError) as info:
        await _client().handshake(_request(magic_cookie_value="nope"))
    assert info.value.code == Code.INVALID_ARGUMENT
    assert "magic cookie" in info.value.message


async def test_custom_cookie() -> None:
    client = _client(magic_cookie_key="MY_APP", magic_cookie_value="xyz")
    ok = await client.handshake(_request(magic_cookie_key="MY_APP", magic_cookie_value="xyz"))
    assert ok.plugins[0].name == "kv"
    with pytest.raises(ConnectError):
        await client.handshake(_request())


async def test_core_version_must_be_one() -> None:
    with pytest.raises(ConnectError) as info:
        await _client().handshake(_request(core_protocol_version=2))
    assert info.value.code == Code.INVALID_ARGUMENT
    assert "core protocol version: 2" in info.value.message


async def test_version_list_negotiates_highest_common() -> None:
    client = _client(versions=(1, 2, 3))
    response = await client.handshake(_request(app_protocol_versions=[2, 3, 5]))
    assert response.app_protocol_version == 3
    # Only the single field (connect-plugin-go clients): exact match still works.
    response = await client.handshake(_request(app_protocol_version=2))
    assert response.app_protocol_version == 2


async def test_no_common_version_is_failed_precondition_listing_both() -> None:
    with pytest.raises(ConnectError) as info:
        await _client(versions=(3, 4)).handshake(_request(app_protocol_versions=[1, 2]))
    assert info.value.code == Code.FAILED_PRECONDITION
    assert "[1, 2]" in info.value.message
    assert "[3, 4]" in info.value.message


async def test_unknown_plugin_is_not_found() -> None:
    with pytest.raises(ConnectError) as info:
        await _client().handshake(_request(requested_plugins=["kv", "cache"]))
    assert info.value.code == Code.NOT_FOUND
    assert "'cache'" in info.value.message
    assert "served: kv" in info.value.message


async def test_no_requested_plugin_lists_all() -> None:
    response = await _client().handshake(_request(requested_plugins=[]))
    assert [p.name for p in response.plugins] == ["kv"]
