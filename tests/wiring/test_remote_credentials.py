"""A remote plugin's clients, and the handle's own health checks, carry the chain's credentials."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dependency_injector import containers

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.errors import StartError
from plugin_di.di.providers import ProcessPlugin, RemotePlugin
from plugin_di.launch.config import LaunchOptions
from plugin_di.launch.process import LaunchConfig, PluginProcess
from plugin_di.rpc.interceptors import InterceptorChain

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def guarded() -> AsyncIterator[PluginProcess]:
    """The KV plugin on 127.0.0.1, requiring its launch secret (as a ProcessPlugin would)."""
    config = LaunchConfig(
        name="kv", command=[sys.executable, "-m", "examples.kv"], cwd=str(ROOT), require_auth=True
    )
    process = PluginProcess(config)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def test_remote_plugin_sends_the_chain_bearer_token(guarded: PluginProcess) -> None:
    class Container(containers.DeclarativeContainer):
        kv = RemotePlugin(
            make_plugin(), guarded.url, chain=InterceptorChain(bearer_token=guarded.secret)
        )

    app = App(Container)
    await app.start()  # the start-up health check (PluginControl) carried the token too
    try:
        kv = app.container.kv.client(KVServiceClient)()
        await kv.put(kv_pb2.PutRequest(key="a", value=b"1"))
        assert (await kv.get(kv_pb2.GetRequest(key="a"))).value == b"1"
    finally:
        await app.stop()


async def test_remote_plugin_without_the_token_fails_its_start_clearly(
    guarded: PluginProcess,
) -> None:
    class Container(containers.DeclarativeContainer):
        kv = RemotePlugin(make_plugin(), guarded.url)

    app = App(Container)
    with pytest.raises(StartError) as failed:
        await app.start()
    assert "UNAUTHENTICATED" in str(failed.value)
    assert guarded.url in str(failed.value)


def test_process_plugins_require_the_secret_unless_a_host_routes_to_them() -> None:
    class Container(containers.DeclarativeContainer):
        alone = ProcessPlugin(make_plugin(), module="examples.kv")
        hosted = ProcessPlugin(make_plugin(), module="examples.kv", host_url="http://127.0.0.1:1")
        forced = ProcessPlugin(
            make_plugin(),
            module="examples.kv",
            host_url="http://127.0.0.1:1",
            launch=LaunchOptions(require_auth=True),
        )

    container = Container()
    assert container.alone().config.require_auth
    assert not container.hosted().config.require_auth
    assert container.forced().config.require_auth
