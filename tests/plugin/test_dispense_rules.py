"""connect-plugin-go acceptance scenario 9.24 #14: in-memory isolation, health, dispense rules."""

from __future__ import annotations

import pytest
from dependency_injector import containers

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from examples.kv.store import KVStore
from examples.logger.plugin import StderrLogger
from plugin_di.di.app import App
from plugin_di.di.providers import InMemoryPlugin, plugins_health
from plugin_di.gen.capability.logger.v1.logger_connect import (
    LoggerASGIApplication,
    LoggerClient,
)
from plugin_di.launch.client import PluginClient, PluginClientError
from plugin_di.plugin.definition import Plugin, Service
from plugin_di.plugin.health import HealthState
from tests.support.inloop import serving


class _TwoStores(containers.DeclarativeContainer):
    a = InMemoryPlugin(
        Plugin("kv-a", [Service(KVServiceASGIApplication, KVServiceClient, KVStore())])
    )
    b = InMemoryPlugin(
        Plugin("kv-b", [Service(KVServiceASGIApplication, KVServiceClient, KVStore())])
    )


async def test_two_in_memory_instances_are_isolated_and_healthy() -> None:
    app = App(_TwoStores, sinks=[])
    await app.start()
    try:
        a = app.container.a.client(KVServiceClient)()
        b = app.container.b.client(KVServiceClient)()
        await a.put(pb.PutRequest(key="x", value=b"from-a"))
        await b.put(pb.PutRequest(key="x", value=b"from-b"))
        assert (await a.get(pb.GetRequest(key="x"))).value == b"from-a"
        assert (await b.get(pb.GetRequest(key="x"))).value == b"from-b"
        health = await plugins_health(app.container)
        assert {name: h.state for name, h in health.items()} == {
            "kv-a": HealthState.HEALTHY,
            "kv-b": HealthState.HEALTHY,
        }
    finally:
        await app.stop()


async def test_dispense_by_name_needs_exactly_one_service() -> None:
    """By name only a one-service plugin (its default service; see test_client for that)."""
    both = Plugin(
        "both",
        [
            Service(KVServiceASGIApplication, KVServiceClient, KVStore()),
            Service(LoggerASGIApplication, LoggerClient, StderrLogger()),
        ],
    )
    async with serving(both) as (_, line, _out), PluginClient(line.url, both) as client:
        with pytest.raises(PluginClientError, match="several services; dispense one of"):
            client.dispense("both")
        with pytest.raises(PluginClientError, match="no plugin named 'cache'"):
            client.dispense("cache")
        assert isinstance(client.dispense(LoggerClient), LoggerClient)
        assert isinstance(client.dispense(KVServiceClient), KVServiceClient)
