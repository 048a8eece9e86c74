"""The three-state health model and both health services over it."""

from __future__ import annotations

import asyncio

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.gen.connectplugin.health.v1 import health_pb2 as cp
from plugin_di.gen.connectplugin.health.v1.health_connect import (
    HealthServiceASGIApplication,
    HealthServiceClient,
)
from plugin_di.gen.grpc.health.v1 import health_pb2 as gh
from plugin_di.gen.grpc.health.v1.health_connect import HealthASGIApplication, HealthClient
from plugin_di.plugin.definition import Service
from plugin_di.plugin.direct import direct_client
from plugin_di.plugin.health import (
    ConnectPluginHealthService,
    GrpcHealthService,
    Health,
    HealthState,
    ServingStatus,
)


def test_states_map_to_serving_statuses() -> None:
    health = Health(["kv"])
    assert health.status() == ServingStatus.SERVING
    health.report(HealthState.DEGRADED, "cache cold", ["cache"])
    assert health.status("kv") == ServingStatus.SERVING
    assert health.current.unavailable_dependencies == ("cache",)
    health.report(HealthState.UNHEALTHY, "db down", ["db"])
    assert health.status() == ServingStatus.NOT_SERVING
    assert health.status("kv") == ServingStatus.NOT_SERVING
    assert health.current.reason == "db down"
    health.report(HealthState.HEALTHY)
    assert health.services() == {"": ServingStatus.SERVING, "kv": ServingStatus.SERVING}


def test_shutdown_flips_and_freezes() -> None:
    health = Health(["kv"])
    health.shutdown()
    health.report(HealthState.HEALTHY)
    health.set_status("kv", ServingStatus.SERVING)
    assert health.services() == {"": ServingStatus.NOT_SERVING, "kv": ServingStatus.NOT_SERVING}


async def test_watch_streams_every_change_without_duplicates() -> None:
    health = Health()
    seen: list[ServingStatus] = []
    first = asyncio.Event()

    async def watch() -> None:
        async for status in health.watch():
            seen.append(status)
            first.set()

    task = asyncio.create_task(watch())
    await asyncio.wait_for(first.wait(), 5)
    health.report(HealthState.DEGRADED)  # still SERVING: no event
    health.report(HealthState.UNHEALTHY)
    health.report(HealthState.HEALTHY)
    health.shutdown()
    await asyncio.wait_for(task, 5)
    assert seen == [
        ServingStatus.SERVING,
        ServingStatus.NOT_SERVING,
        ServingStatus.SERVING,
        ServingStatus.NOT_SERVING,
    ]


async def test_watch_unknown_service_then_it_appears() -> None:
    health = Health()
    stream = health.watch("late")
    assert await anext(stream) == ServingStatus.SERVICE_UNKNOWN
    health.set_status("late", ServingStatus.SERVING)
    assert await asyncio.wait_for(anext(stream), 5) == ServingStatus.SERVING
    await stream.aclose()


async def test_connectplugin_health_service() -> None:
    health = Health(["kv"])
    impl = ConnectPluginHealthService(health)
    client = direct_client(Service(HealthServiceASGIApplication, HealthServiceClient, impl))
    response = await client.check(cp.HealthCheckRequest(service="kv"))
    assert response.status == cp.SERVING_STATUS_SERVING
    with pytest.raises(ConnectError) as info:
        await client.check(cp.HealthCheckRequest(service="nope"))
    assert info.value.code == Code.NOT_FOUND
    stream = client.watch(cp.HealthCheckRequest())
    assert (await anext(stream)).status == cp.SERVING_STATUS_SERVING
    health.report(HealthState.UNHEALTHY, "broken")
    assert (await anext(stream)).status == cp.SERVING_STATUS_NOT_SERVING
    health.shutdown()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_grpc_health_check_list_watch() -> None:
    health = Health(["kv.v1.KVService"])
    client = direct_client(Service(HealthASGIApplication, HealthClient, GrpcHealthService(health)))
    assert (await client.check(gh.HealthCheckRequest())).status == gh.HealthCheckResponse.SERVING
    listed = await client.list(gh.HealthListRequest())
    assert {k: v.status for k, v in listed.statuses.items()} == {
        "": gh.HealthCheckResponse.SERVING,
        "kv.v1.KVService": gh.HealthCheckResponse.SERVING,
    }
    with pytest.raises(ConnectError) as info:
        await client.check(gh.HealthCheckRequest(service="other"))
    assert info.value.code == Code.NOT_FOUND
    stream = client.watch(gh.HealthCheckRequest(service="kv.v1.KVService"))
    assert (await anext(stream)).status == gh.HealthCheckResponse.SERVING
    health.shutdown()
    assert (await anext(stream)).status == gh.HealthCheckResponse.NOT_SERVING
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
