"""A Host built with ``bind`` knows its URL before it starts, so a container can hand it out."""

from __future__ import annotations

import httpx
import pytest
from dependency_injector import containers, providers

from plugin_di.di.app import App
from plugin_di.host.server import Host
from plugin_di.plugin.host_client import HostClient, HostClientError


class _HostUser:
    """Something built before the host starts that keeps the host's URL."""

    def __init__(self, host_url: str) -> None:
        self.host_url = host_url


class _Platform(containers.DeclarativeContainer):
    host = providers.Singleton(Host, bind="127.0.0.1:0")
    user = providers.Singleton(_HostUser, host_url=host.provided.url)


async def _assert_host_answers(url: str) -> None:
    """A handshake without the magic cookie: only a plugin-di host answers it this way."""
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{url}/connectplugin.v1.HandshakeService/Handshake",
            headers={"content-type": "application/json"},
            content=b'{"coreProtocolVersion": 1}',
        )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"


async def test_url_is_real_before_start_and_served_after() -> None:
    host = Host(bind="127.0.0.1:0")
    url = host.url
    assert url.startswith("http://127.0.0.1:")
    assert not url.endswith(":0")
    await host.start()
    try:
        await _assert_host_answers(url)
        assert host.url == url
    finally:
        await host.stop()


async def test_a_provider_built_before_the_host_starts_gets_its_address() -> None:
    app = App(_Platform)
    await app.start()
    try:
        container = app.container
        assert container.user().host_url == container.host().url
        await _assert_host_answers(container.user().host_url)
    finally:
        await app.stop()


async def test_bind_given_twice_is_refused() -> None:
    host = Host(bind="127.0.0.1:0")
    try:
        with pytest.raises(RuntimeError, match="already bound"):
            await host.start("127.0.0.1:0")
    finally:
        await host.stop()


async def test_host_calls_before_the_handshake_say_what_to_do(host: Host) -> None:
    client = HostClient(host.url)
    try:
        with pytest.raises(HostClientError, match="handshake with the host first"):
            await client.discover("logger")
    finally:
        await client.close()
