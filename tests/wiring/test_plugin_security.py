"""The plugin process enforces its launcher's security settings (issue 6, step 2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from dependency_injector import containers

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.clock import FakeClock
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin, plugin_handles
from plugin_di.gen.connectplugin.health.v1 import health_pb2
from plugin_di.gen.connectplugin.health.v1.health_connect import HealthServiceClient
from plugin_di.gen.connectplugin.v1 import lifecycle_pb2
from plugin_di.gen.connectplugin.v1.lifecycle_connect import PluginControlClient
from plugin_di.launch.process_handle import ProcessHandle
from plugin_di.plugin import env
from plugin_di.plugin.config import PluginConfigError
from plugin_di.plugin.security import (
    REQUIRE_AUTH,
    LaunchSecretAuth,
    ServerSecurity,
    rate_from_environ,
)
from plugin_di.rpc.interceptors import (
    InterceptorChain,
    Rate,
    RateLimitInterceptor,
    retry_after_of,
)
from plugin_di.rpc.transport import connect_client, http_client

ROOT = Path(__file__).resolve().parents[2]


def test_nothing_is_enforced_unless_the_launcher_asks() -> None:
    security = ServerSecurity.from_environ({env.LAUNCH_SECRET: "s"})
    assert security.interceptors == []
    assert security.ssl_context is None
    assert security.cert_der == b""


def test_auth_and_rate_limit_from_the_environment() -> None:
    security = ServerSecurity.from_environ(
        {REQUIRE_AUTH: "1", env.LAUNCH_SECRET: "s", "PLUGIN_DI_RATE_LIMIT_RPS": "2"},
        clock=FakeClock(),
    )
    auth, limit = security.interceptors
    assert isinstance(auth, LaunchSecretAuth)
    assert isinstance(limit, RateLimitInterceptor)
    assert limit.policy.rule_for("kv.v1.KVService", "Get") == ("*", Rate(2.0, 2000))
    assert limit.policy.rule_for("grpc.health.v1.Health", "Check") is None  # probes: no limit
    assert rate_from_environ({"PLUGIN_DI_RATE_LIMIT_BURST": "7"}) == Rate(1000.0, 7)
    assert rate_from_environ({}) is None


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({REQUIRE_AUTH: "1"}, env.LAUNCH_SECRET),
        ({"PLUGIN_DI_RATE_LIMIT_RPS": "fast"}, "PLUGIN_DI_RATE_LIMIT_RPS='fast'"),
        ({"PLUGIN_DI_RATE_LIMIT_BURST": "1.5"}, "PLUGIN_DI_RATE_LIMIT_BURST='1.5'"),
        ({"PLUGIN_DI_RATE_LIMIT_RPS": "-1"}, "PLUGIN_DI_RATE_LIMIT_RPS='-1'"),
        ({env.CLIENT_CERT: "not a certificate"}, env.CLIENT_CERT),
    ],
)
def test_bad_settings_refuse_to_start_naming_the_variable(
    environ: dict[str, str], names: str
) -> None:
    with pytest.raises(PluginConfigError) as error:
        ServerSecurity.from_environ(environ)
    assert names in str(error.value)


@pytest.fixture
async def launched() -> AsyncIterator[tuple[App, ProcessHandle]]:
    class Container(containers.DeclarativeContainer):
        kv = ProcessPlugin(
            make_plugin(),
            module="examples.kv",
            cwd=str(ROOT),
            env={"PLUGIN_DI_RATE_LIMIT_RPS": "0.5", "PLUGIN_DI_RATE_LIMIT_BURST": "4"},
            chain=InterceptorChain(retry=None),  # see each rejection (no retry after the hint)
        )

    app = App(Container)
    await app.start()
    try:
        handle = plugin_handles(app.container)["kv"]
        assert isinstance(handle, ProcessHandle)
        yield app, handle
    finally:
        await app.stop()


async def _outsider(url: str, cls: type[Any]) -> tuple[Any, Any]:
    http = http_client(url)
    return connect_client(cls, url, http, timeout_ms=5000), http


async def test_a_launched_plugin_serves_only_its_launcher(
    launched: tuple[App, ProcessHandle],
) -> None:
    app, handle = launched
    assert handle.config.require_auth
    kv = app.container.kv.client(KVServiceClient)()
    await kv.put(kv_pb2.PutRequest(key="a", value=b"1"))  # the launcher's clients send it
    assert (await handle.health()).state.name == "HEALTHY"  # PluginControl, with the secret

    outsiders: list[Any] = []
    try:
        stranger, http = await _outsider(handle.url, KVServiceClient)
        outsiders.append(http)
        with pytest.raises(ConnectError) as refused:
            await stranger.get(kv_pb2.GetRequest(key="a"))
        assert refused.value.code is Code.UNAUTHENTICATED
        control, http = await _outsider(handle.url, PluginControlClient)
        outsiders.append(http)
        with pytest.raises(ConnectError) as refused:
            await control.shutdown(lifecycle_pb2.ShutdownRequest(grace_period_seconds=1))
        assert refused.value.code is Code.UNAUTHENTICATED
        health, http = await _outsider(handle.url, HealthServiceClient)
        outsiders.append(http)
        answer = await health.check(health_pb2.HealthCheckRequest())  # health stays public
        assert answer.status == health_pb2.SERVING_STATUS_SERVING
    finally:
        for http in outsiders:
            await http.aclose()
        await asyncio.sleep(0.05)
    # the refused Shutdown did nothing: the plugin still serves its launcher
    assert (await kv.get(kv_pb2.GetRequest(key="a"))).value == b"1"


async def test_the_plugin_rate_limits_its_services_with_a_retry_after_hint(
    launched: tuple[App, ProcessHandle],
) -> None:
    _, handle = launched
    kv = handle.client(KVServiceClient)
    codes: list[Code | None] = []
    error: ConnectError | None = None
    for i in range(7):  # burst 4
        try:
            await kv.put(kv_pb2.PutRequest(key=f"k{i}", value=b"v"))
            codes.append(None)
        except ConnectError as exc:
            codes.append(exc.code)
            error = exc
    assert codes[:4] == [None] * 4
    assert set(codes[4:]) == {Code.RESOURCE_EXHAUSTED}
    assert error is not None
    wait = retry_after_of(error)
    assert wait is not None
    assert 0 < wait <= 2.0
