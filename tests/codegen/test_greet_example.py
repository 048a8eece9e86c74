"""The Python greeter of docs/writing-a-plugin.md: declared in one line, launched, tested."""

from __future__ import annotations

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from dependency_injector import containers, providers

from examples.greet.app import AppContainer, Welcome
from examples.greet.gen.greet.v1.greet_pb2 import GreetRequest
from examples.greet.gen.greet.v1.greet_plugin import GreeterServiceClient
from examples.greet.plugin import plugin
from plugin_di import InMemoryPlugin, inprocess_client
from plugin_di.di.providers import plugin_handles
from plugin_di.testing import started
from tests.support.pids import wait_gone


async def test_the_app_launches_the_plugin_process_and_calls_it() -> None:
    async with started(AppContainer) as app:
        pid = plugin_handles(app.container)["greeter"].pid
        assert pid is not None
        assert await app.container.welcome().message("world") == (
            "Hello, world! (served by python)"
        )
    assert wait_gone([pid], timeout=10) == []


async def test_the_same_plugin_in_memory() -> None:
    class InMemoryApp(containers.DeclarativeContainer):
        greet = InMemoryPlugin(plugin)
        welcome = providers.Singleton(Welcome, greeter=greet.client(GreeterServiceClient))

    async with started(InMemoryApp) as app:
        assert await app.container.welcome().message("you") == "Hello, you! (served by python)"


async def test_an_empty_name_is_invalid_argument() -> None:
    client = inprocess_client(plugin, GreeterServiceClient)
    with pytest.raises(ConnectError) as refused:
        await client.greet(GreetRequest(name=""))
    assert refused.value.code is Code.INVALID_ARGUMENT
    assert refused.value.message == "name cannot be empty"
