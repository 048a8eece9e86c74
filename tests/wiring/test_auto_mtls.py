"""Automatic mTLS for process plugins: each side trusts only the other's ephemeral certificate."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from connectrpc.errors import ConnectError
from dependency_injector import containers

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin, plugin_handles
from plugin_di.gen.connectplugin.health.v1 import health_pb2
from plugin_di.gen.connectplugin.health.v1.health_connect import HealthServiceClient
from plugin_di.launch.config import LaunchOptions
from plugin_di.launch.process_handle import ProcessHandle
from plugin_di.plugin import env
from plugin_di.plugin.automtls import AutoMTLS
from plugin_di.rpc.tls import ClientTLS, der_to_pem, generate_ephemeral_cert
from plugin_di.rpc.transport import connect_client, http_client

ROOT = Path(__file__).resolve().parents[2]


def test_the_plugin_side_pins_the_launchers_certificate() -> None:
    host = generate_ephemeral_cert("host")
    mtls = AutoMTLS.from_environ({env.CLIENT_CERT: host.cert_pem.decode()})
    assert mtls is not None
    assert mtls.peer_fingerprint == host.fingerprint
    assert mtls.cert_der != host.cert_der
    assert AutoMTLS.from_environ({}) is None


async def _health_status(url: str, tls: ClientTLS | None) -> int:
    http = http_client(url, tls=tls)
    try:
        client = connect_client(HealthServiceClient, url, http, timeout_ms=5000)
        answer = await client.check(health_pb2.HealthCheckRequest())
        return int(answer.status)
    finally:
        await http.aclose()
        await asyncio.sleep(0.05)


async def test_only_the_launcher_can_call_an_auto_mtls_plugin() -> None:
    class Container(containers.DeclarativeContainer):
        kv = ProcessPlugin(
            make_plugin(), module="examples.kv", cwd=str(ROOT), launch=LaunchOptions(auto_mtls=True)
        )

    app = App(Container)
    await app.start()
    try:
        handle = plugin_handles(app.container)["kv"]
        assert isinstance(handle, ProcessHandle)
        # TLS needs TCP: the plugin left the offered Unix socket for 127.0.0.1
        assert handle.url.startswith("https://127.0.0.1:")
        kv = app.container.kv.client(KVServiceClient)()
        await kv.put(kv_pb2.PutRequest(key="a", value=b"1"))
        assert (await kv.get(kv_pb2.GetRequest(key="a"))).value == b"1"
        process = handle.supervisor.process
        assert process is not None
        assert process.host_cert is not None
        plugin_pem = der_to_pem(process.handshake.cert_der)

        # the launcher's own TLS settings reach the public health service...
        assert await _health_status(handle.url, process.client_tls()) == 1
        # ...but a client trusting the plugin without the host's certificate cannot
        with pytest.raises(ConnectError):
            await _health_status(handle.url, ClientTLS(ca_pem=plugin_pem))
        # nor one presenting another certificate
        other = generate_ephemeral_cert("intruder")
        stranger = ClientTLS(ca_pem=plugin_pem, cert_pem=other.cert_pem, key_pem=other.key_pem)
        with pytest.raises(ConnectError):
            await _health_status(handle.url, stranger)
        # and the host's certificate does not make a client trust another server
        host_only = ClientTLS(
            cert_pem=process.host_cert.cert_pem, key_pem=process.host_cert.key_pem
        )
        with pytest.raises(ConnectError):
            await _health_status(handle.url, host_only)
        # the plugin still serves its launcher afterwards
        assert (await kv.get(kv_pb2.GetRequest(key="a"))).value == b"1"
    finally:
        await app.stop()


async def test_handlers_see_the_launcher_as_the_tls_peer() -> None:
    serve = [sys.executable, "-m", "plugin_di", "serve", "tests.wiring.flaky_kv:plugin"]

    class Container(containers.DeclarativeContainer):
        kv = ProcessPlugin(
            make_plugin(), command=serve, cwd=str(ROOT), launch=LaunchOptions(auto_mtls=True)
        )

    app = App(Container)
    await app.start()
    try:
        kv = app.container.kv.client(KVServiceClient)()
        answer = await kv.get(kv_pb2.GetRequest(key="whoami"))
        assert answer.value == b"plugin-di-host-kv"
    finally:
        await app.stop()
