"""plugin-di against connect-plugin-go's own binaries, in every direction, on the defaults.

connect-plugin-go serves and routes HTTP/1.1 on cleartext; plugin-di's ``http://`` URLs
speak HTTP/1.1 by default, so no special URL or setting appears below. Skipped (with the
reason) when ``../shared/go-peer`` is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from dependency_injector import containers

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin as make_kv_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import RemotePlugin, plugin_handles
from plugin_di.gen.capability.logger.v1 import logger_pb2
from plugin_di.gen.capability.logger.v1.logger_connect import (
    LoggerASGIApplication,
    LoggerClient,
)
from plugin_di.gen.connectplugin.health.v1 import health_pb2 as plugin_health
from plugin_di.gen.connectplugin.health.v1.health_connect import (
    HealthServiceClient,
)
from plugin_di.gen.grpc.health.v1 import health_pb2 as grpc_health
from plugin_di.gen.grpc.health.v1.health_connect import HealthClient
from plugin_di.host.admission import AdmissionPolicy, AllowEntry
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from plugin_di.launch.client import PluginClient
from plugin_di.plugin.definition import Plugin, Service
from plugin_di.rpc.transport import connect_client, http_client
from tests.interop.support.go_peer import (
    ClientRun,
    Running,
    free_port,
    go_binary,
    go_host,
    go_kv_client,
    go_kv_server,
)
from tests.support.processes import SERVE_KV, running

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(90)

T = TypeVar("T")
SERVING = plugin_health.SERVING_STATUS_SERVING


def _passed(run: ClientRun, *expected: str) -> None:
    assert run.returncode == 0, "\n".join(run.lines)
    assert run.failures == []
    for text in expected:
        assert run.ok(text), f"no OK line with {text!r} in:\n" + "\n".join(run.lines)


@contextlib.asynccontextmanager
async def _in_thread(manager: contextlib.AbstractContextManager[T]) -> AsyncIterator[T]:
    """Enter and leave a blocking context manager off the loop (which serves meanwhile)."""
    value = await asyncio.to_thread(manager.__enter__)
    try:
        yield value
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


async def _watch_sees_a_put(kv: KVServiceClient) -> None:
    """Watch ``w/``: the start sentinel, then the event of a Put."""
    stream = kv.watch(kv_pb2.WatchRequest(prefix="w/"), timeout_ms=10_000)
    try:
        assert (await anext(stream)).key == "_watch_started"  # the watch is registered
        await kv.put(kv_pb2.PutRequest(key="w/1", value=b"v1"))
        event = await anext(stream)
        assert (event.type, event.key, event.value) == (kv_pb2.EVENT_TYPE_PUT, "w/1", b"v1")
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


# --- Go plugin <- plugin-di client ---------------------------------------------------------


@pytest.fixture
def go_kv() -> Iterator[tuple[Running, str]]:
    with go_kv_server() as (server, url):
        yield server, url


async def test_remote_plugin_calls_the_go_plugin(go_kv: tuple[Running, str]) -> None:
    _, url = go_kv

    class Container(containers.DeclarativeContainer):
        kv = RemotePlugin(make_kv_plugin(), url)  # checks the plugin's health at start

    app = App(Container)
    await app.start()
    try:
        assert plugin_handles(app.container)["kv"].url == url
        kv = app.container.kv.client(KVServiceClient)()
        await kv.put(kv_pb2.PutRequest(key="py", value=b"from plugin-di"))
        got = await kv.get(kv_pb2.GetRequest(key="py"))
        assert (got.found, got.value) == (True, b"from plugin-di")
        assert (await kv.delete(kv_pb2.DeleteRequest(key="py"))).found
        assert not (await kv.get(kv_pb2.GetRequest(key="py"))).found
        await _watch_sees_a_put(kv)
    finally:
        await app.stop()


async def test_handshake_and_health_of_the_go_plugin(go_kv: tuple[Running, str]) -> None:
    _, url = go_kv
    async with PluginClient(url, [make_kv_plugin()]) as plugins:
        response = await plugins.connect()
        assert [(p.name, p.version) for p in response.plugins] == [("kv", "1.0.0")]
        assert response.app_protocol_version == 1
        kv = plugins.dispense(KVServiceClient)
        await kv.put(kv_pb2.PutRequest(key="k", value=b"v"))
        assert (await kv.get(kv_pb2.GetRequest(key="k"))).value == b"v"
    async with http_client(url) as http:
        health = connect_client(HealthServiceClient, url, http)
        for name in ("", "kv"):
            answer = await health.check(plugin_health.HealthCheckRequest(service=name))
            assert answer.status == SERVING
        stream = health.watch(plugin_health.HealthCheckRequest(service=""))
        assert (await anext(stream)).status == SERVING
        await stream.aclose()
        # The standard grpc.health.v1 is plugin-di's addition: the Go plugin does not serve it,
        # and says so the way every Connect server does.
        standard = connect_client(HealthClient, url, http)
        with pytest.raises(ConnectError) as missing:
            await standard.check(grpc_health.HealthCheckRequest())
        assert missing.value.code is Code.UNIMPLEMENTED


# --- plugin-di plugin <- Go client ---------------------------------------------------------


def test_go_client_calls_a_served_plugin_di_plugin() -> None:
    go_binary("gokvclient")
    with running(SERVE_KV) as plugin:
        assert plugin.url.startswith("http://")
        run = go_kv_client("direct", "-endpoint", plugin.url, "-shutdown")
        _passed(
            run,
            "Connect (connectplugin.v1.HandshakeService/Handshake)",
            "bad magic cookie refused",
            "Get go-key -> found=true",
            "Watch delivered the PUT w/1 event",
            "Delete go-key -> found=true",
            'Health.Check("") = SERVING_STATUS_SERVING',
            'Health.Check("kv") = SERVING_STATUS_SERVING',
            "PluginControl.GetHealth state=HEALTH_STATE_HEALTHY",
            "PluginControl.Shutdown acknowledged=true",
        )
        assert plugin.wait(10) == 0  # the Shutdown it acknowledged stopped it cleanly


# --- Go host <- plugin-di plugin (self-registering) and a Go consumer ----------------------


def test_plugin_di_plugin_joins_the_go_host_and_is_called_through_its_router() -> None:
    go_binary("gokvclient")
    with go_host() as host_url, running(SERVE_KV, {"PLUGIN_DI_HOST_URL": host_url}) as plugin:
        run = go_kv_client("routed", "-host", host_url, "-self-id", "go-consumer")
        if run.returncode != 0:
            plugin.stop()
            pytest.fail("\n".join(run.lines) + "\nplugin stderr:\n" + plugin.stderr())
        _passed(
            run,
            "host handshake runtime_id=",
            "DiscoverService kv -> provider_id=kv-",
            "routed Put",
            "routed Get",
            "routed Get without credentials refused",
        )
        assert any('value="via-host"' in line for line in run.lines)


# --- plugin-di host <- Go plugin (self-registering) and a Go consumer ----------------------


class _Logger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def log(self, request: logger_pb2.LogRequest, ctx: Any) -> logger_pb2.LogResponse:
        self.lines.append(request.message)
        return logger_pb2.LogResponse()


async def test_go_plugin_and_go_consumer_on_a_plugin_di_host() -> None:
    go_binary("gokvclient")
    logger = _Logger()
    # connect-plugin-go plugins send no credential: the allow-list admits them by self_id
    admission = AdmissionPolicy(
        allow=(AllowEntry("go-kv", frozenset({"kv"})), AllowEntry("go-consumer"))
    )
    host = Host(HostConfig(sweep_interval=1e9), admission=admission)
    host.register_capability(
        "logger",
        "1.0.0",
        Plugin(name="logger", services=[Service(LoggerASGIApplication, LoggerClient, impl=logger)]),
    )
    await host.start("127.0.0.1:0")
    try:
        port = free_port()  # its base_url must be known before it starts
        provider = go_kv_server("-host-url", host.url, "-self-id", "go-kv", port=port)
        async with _in_thread(provider) as (server, url):
            await asyncio.to_thread(server.wait_line, "GOKV_REGISTERED")
            await asyncio.to_thread(server.wait_line, "GOKV_REPORTED_HEALTHY")
            (registration,) = host.registry.store.registrations("kv")
            assert registration.metadata["base_url"] == url  # http://: reached over HTTP/1.1
            routed = await asyncio.to_thread(go_kv_client, "routed", "-host", host.url)
            _passed(
                routed,
                "host handshake runtime_id=go-consumer-",
                "ReportHealth HEALTHY",
                f"DiscoverService kv -> provider_id={registration.runtime_id}",
                "routed Put",
                "routed Get",
                "routed Get without credentials refused",
            )
            assert any('value="via-host"' in line for line in routed.lines)
            broker = await asyncio.to_thread(
                go_kv_client, "broker", "-host", host.url, "-type", "logger"
            )
            _passed(
                broker,
                "RequestCapability logger -> grant_id=",
                "Logger.Log via grant endpoint",
                "Logger.Log with a wrong grant token refused",
            )
            assert logger.lines == ["hello from Go via capability grant"]
    finally:
        await host.stop()
