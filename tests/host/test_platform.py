"""Runtime changes: late dependencies, managed add, remove (degrade/stop), blue-green replace."""

from __future__ import annotations

import asyncio

import pytest

from plugin_di.gen.capability.logger.v1 import logger_pb2
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.host.platform import PlatformError, RemovalPolicy
from plugin_di.host.server import Host
from plugin_di.host.tracker import DEGRADED, HEALTHY
from plugin_di.plugin import HostClient, HostSession
from plugin_di.plugin.server import PluginServer
from tests.support.host import (
    RecordingLogger,
    cache_plugin,
    h2_client,
    logger_plugin,
    managed,
)


async def test_late_dependency_brings_dependent_back_to_healthy(host: Host) -> None:
    recorder = RecordingLogger()
    async with h2_client() as http:
        cache_client = HostClient(host.url, http_client=http)
        cache = await cache_client.handshake("cache", plugins=[cache_plugin()])
        cache_session = HostSession(cache_client, cache_plugin())
        await cache_session.start()
        report = host.tracker.get(cache.runtime_id)
        assert report is not None
        assert report.state == DEGRADED
        assert report.unavailable_dependencies == ("logger",)

        # the logger arrives later, served in memory behind the host's router
        logger_client = HostClient(host.url, http_client=http)
        logger = await logger_client.handshake("logger", plugins=[logger_plugin()])
        host.router.set_upstream(logger.runtime_id, _memory_upstream(recorder))
        logger_session = HostSession(logger_client, logger_plugin())
        await logger_session.start()

        async with asyncio.timeout(5):
            await host.tracker.wait_for(cache.runtime_id, (HEALTHY,))
            await cache_session.wait_state(HEALTHY)
        endpoint = cache_session.endpoint("logger")
        assert endpoint is not None
        routed = cache_client.routed_client(LoggerClient, endpoint)
        await routed.log(logger_pb2.LogRequest(level="info", message="via router"))
        assert recorder.lines == ["[info] via router"]

        await logger_session.stop()  # the dependency leaves again: DEGRADED again
        async with asyncio.timeout(5):
            await host.tracker.wait_for(cache.runtime_id, (DEGRADED,))
        await cache_session.stop()


def _memory_upstream(recorder: RecordingLogger):  # type: ignore[no-untyped-def]
    from plugin_di.host.broker import capability_app
    from plugin_di.host.router import Upstream

    return Upstream(app=capability_app(logger_plugin(recorder)))


async def test_managed_add_checks_dependencies_and_remove_degrades(host: Host) -> None:
    async with h2_client() as http, managed(cache_plugin(), http) as (_, cache_url, _t):
        with pytest.raises(PlatformError, match='required service "logger" not available'):
            await host.platform.add_plugin(cache_url)
        async with managed(logger_plugin(), http) as (logger_server, logger_url, _):
            logger_id = await host.platform.add_plugin(logger_url)
            assert logger_id.startswith("logger-")
            assert host.registry.discover("logger")[0].runtime_id == logger_id
            await host.platform.remove_plugin(logger_id)
            assert logger_server.stop_reason == "plugin removed"
        async with (
            managed(logger_plugin(), http) as (logger_server, logger_url, _),
            managed(cache_plugin(), http) as (_, cache_url2, _t2),
        ):
            logger_id = await host.platform.add_plugin(logger_url)
            cache_id = await host.platform.add_plugin(cache_url2)
            assert host.platform.startup_order() == [logger_id, cache_id]
            impact = await host.platform.remove_plugin(logger_id)
            assert impact.affected_plugins == [cache_id]
            assert impact.affected_services == ["logger"]
            report = host.tracker.get(cache_id)
            assert report is not None
            assert report.state == DEGRADED
            assert "logger" in report.unavailable_dependencies
            assert logger_id not in host.tokens
            assert host.registry.store.registrations_of(logger_id) == []


async def test_remove_with_stop_policy_removes_dependents(host: Host) -> None:
    async with (
        h2_client() as http,
        managed(logger_plugin(), http) as (_, logger_url, _),
        managed(cache_plugin(), http) as (cache_server, cache_url, _t),
    ):
        logger_id = await host.platform.add_plugin(logger_url)
        cache_id = await host.platform.add_plugin(cache_url)
        await host.platform.remove_plugin(logger_id, policy=RemovalPolicy.STOP)
        assert host.platform.managed() == []
        assert cache_id not in host.graph
        assert cache_server.stop_reason.startswith("required service removed")
        with pytest.raises(PlatformError, match="plugin not found"):
            await host.platform.remove_plugin(logger_id)


async def test_replace_under_load_fails_no_call(host: Host) -> None:
    old_logger, new_logger = RecordingLogger(), RecordingLogger()
    async with h2_client() as http, managed(logger_plugin(old_logger), http) as (old, old_url, _):
        old_id = await host.platform.add_plugin(old_url)
        caller = HostClient(host.url, http_client=http)
        await caller.handshake("app")
        endpoint = (await caller.discover("logger")).endpoint
        client = caller.routed_client(LoggerClient, endpoint)
        failures: list[BaseException] = []
        done = 0
        stop = asyncio.Event()
        failed = asyncio.Event()

        async def load(worker: int) -> None:
            nonlocal done
            for i in range(10_000):  # bounded; ends when told
                if stop.is_set():
                    return
                try:
                    await client.log(
                        logger_pb2.LogRequest(message=f"{worker}-{i}"), timeout_ms=5000
                    )
                    done += 1
                except Exception as exc:
                    failures.append(exc)

        workers = [asyncio.create_task(load(w)) for w in range(4)]
        async with asyncio.timeout(20):
            await old_logger.wait_lines(20, failed)
            assert failures == []
            async with managed(logger_plugin(new_logger), http) as (_, new_url, _t):
                new_id = await host.platform.replace_plugin(old_id, new_url)
                before = len(new_logger.lines)
                await new_logger.wait_lines(before + 20, failed)
                stop.set()
                await asyncio.gather(*workers)
                assert host.registry.discover("logger")[0].runtime_id == new_id
        assert failures == [], [str(f) for f in failures[:3]]
        assert done == len(old_logger.lines) + len(new_logger.lines)
        assert new_id != old_id
        assert old.stop_reason == "replaced with new version"
        assert old_id not in host.tokens


async def test_add_times_out_when_plugin_never_reports(host: Host) -> None:
    server = PluginServer(logger_plugin())  # served in memory, and nobody follows the identity
    with pytest.raises(PlatformError, match="did not become healthy"):
        await host.platform.add_plugin(server.app, health_timeout=0.2)
    assert host.platform.managed() == []
    assert len(host.tokens) == 0


async def test_managed_plugin_on_a_unix_socket_is_routed(host: Host, tmp_path: object) -> None:
    recorder = RecordingLogger()
    sock = f"unix:{tmp_path}/logger.sock"
    async with h2_client() as http, managed(logger_plugin(recorder), http, sock) as (_, url, _t):
        assert url.startswith("unix://")
        logger_id = await host.platform.add_plugin(url)
        caller = HostClient(host.url, http_client=http)
        await caller.handshake("app")
        endpoint = (await caller.discover("logger")).endpoint
        assert endpoint.provider_id == logger_id
        client = caller.routed_client(LoggerClient, endpoint)
        await client.log(logger_pb2.LogRequest(level="info", message="over uds"))
        assert recorder.lines == ["[info] over uds"]
        await host.platform.remove_plugin(logger_id)
