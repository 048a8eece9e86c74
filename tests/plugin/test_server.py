"""The served runtime services, and how a graceful stop treats calls and connections."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from connectrpc.errors import ConnectError

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.clock import FakeClock
from plugin_di.gen.connectplugin.v1 import lifecycle_pb2 as lc
from plugin_di.gen.connectplugin.v1 import plugininfo_pb2 as info_pb
from plugin_di.gen.connectplugin.v1.lifecycle_connect import PluginControlClient
from plugin_di.gen.connectplugin.v1.plugininfo_connect import PluginIdentityClient
from plugin_di.gen.grpc.health.v1 import health_pb2 as gh
from plugin_di.gen.grpc.health.v1.health_connect import HealthClient
from plugin_di.plugin.health import HealthState
from plugin_di.plugin.identity import RuntimeIdentity
from plugin_di.rpc.transport import connect_client, http_client
from tests.support.inloop import serving
from tests.support.probe import probe_plugin


async def _wait_until(predicate: object, what: str) -> None:
    for _ in range(500):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_identity_control_and_health_services() -> None:
    plugin = make_plugin()
    async with serving(plugin) as (server, line, _), http_client(line.url) as http:
        identity = connect_client(PluginIdentityClient, line.url, http)
        control = connect_client(PluginControlClient, line.url, http)
        health = connect_client(HealthClient, line.url, http)
        info = await identity.get_plugin_info(info_pb.GetPluginInfoRequest())
        assert (info.self_id, info.self_version) == ("kv", "1.0.0")
        assert [(p.type, p.path) for p in info.provides] == [("kv", "/kv.v1.KVService/")]
        assert info.metadata["name"] == "kv"
        ack = await identity.set_runtime_identity(
            info_pb.SetRuntimeIdentityRequest(
                runtime_id="kv-1a2b", runtime_token="tok", host_url="http://host"
            )
        )
        assert ack.acknowledged
        assert server.identity.identity == RuntimeIdentity("kv-1a2b", "tok", "http://host")
        with pytest.raises(ConnectError):
            await identity.set_runtime_identity(info_pb.SetRuntimeIdentityRequest())

        server.health.report(HealthState.DEGRADED, "cache cold", ["cache"])
        got = await control.get_health(lc.GetHealthRequest())
        assert (got.state, got.reason, list(got.unavailable_dependencies)) == (
            lc.HEALTH_STATE_DEGRADED,
            "cache cold",
            ["cache"],
        )
        async with httpx.AsyncClient(timeout=10) as plain:
            assert (await plain.get(line.url + "/healthz")).text == "ok"
            assert (await plain.get(line.url + "/readyz")).status_code == 200
        listed = await health.list(gh.HealthListRequest())
        assert set(listed.statuses) == {"", "kv", "kv.v1.KVService"}
        server.health.report(HealthState.UNHEALTHY, "db down")
        checked = await health.check(gh.HealthCheckRequest(service="kv.v1.KVService"))
        assert checked.status == gh.HealthCheckResponse.NOT_SERVING
        async with httpx.AsyncClient(timeout=10) as plain:
            not_ready = await plain.get(line.url + "/readyz")
            assert (not_ready.status_code, not_ready.text) == (503, "not ready")
            assert (await plain.get(line.url + "/healthz")).status_code == 200


async def test_in_flight_call_finishes_during_graceful_stop() -> None:
    plugin, impl = probe_plugin()
    async with serving(plugin) as (server, line, _), http_client(line.url) as http:
        kv = connect_client(KVServiceClient, line.url, http)
        call = asyncio.create_task(kv.get(pb.GetRequest(key="until-stop")))
        await asyncio.wait_for(impl.in_flight.wait(), 10)
        server.request_stop(None, "test")
        response = await asyncio.wait_for(call, 10)
        assert response.value == b"finished"


async def test_idle_connections_do_not_hold_the_stop() -> None:
    # The clock never moves, so a stop that waited for the grace period would hang.
    plugin = make_plugin()
    async with (
        serving(plugin, clock=FakeClock(), grace_period=30) as (server, line, _),
        http_client(line.url) as http,
    ):
        kv = connect_client(KVServiceClient, line.url, http)
        await kv.put(pb.PutRequest(key="a", value=b"1"))
        server.request_stop(None, "test")  # the HTTP/2 connection stays open and idle
        await asyncio.wait_for(server.wait_stopped(), 10)


@pytest.mark.parametrize("version", ["h2", "http1"])
async def test_calls_past_the_grace_period_are_cut(version: str) -> None:
    plugin, impl = probe_plugin()
    clock = FakeClock()
    async with (
        serving(plugin, clock=clock, grace_period=3) as (server, line, _),
        http_client(line.url, http_version=version) as http,
    ):
        kv = connect_client(KVServiceClient, line.url, http)
        call = asyncio.create_task(kv.get(pb.GetRequest(key="hang")))
        await asyncio.wait_for(impl.in_flight.wait(), 10)
        server.request_stop(None, "test")
        await _wait_until(lambda: clock.sleepers > 0, "the grace timer")
        assert not call.done()
        clock.advance(3)
        with pytest.raises(ConnectError):
            await asyncio.wait_for(call, 10)
        await asyncio.wait_for(server.wait_stopped(), 10)


async def test_stream_cancelled_by_the_client_does_not_hold_the_stop() -> None:
    plugin = make_plugin()
    async with serving(plugin, clock=FakeClock(), grace_period=30) as (server, line, _):
        async with http_client(line.url) as http:
            kv = connect_client(KVServiceClient, line.url, http)
            watch = kv.watch(pb.WatchRequest(prefix="a"))
            assert (await anext(watch)).key == "_watch_started"
            await watch.aclose()  # type: ignore[attr-defined]
        server.request_stop(None, "test")
        await asyncio.wait_for(server.wait_stopped(), 10)
