"""Standard clients against a real ``plugin-di host``: grpcio stubs and ``buf curl`` do the
handshake, discover a provider and call it through the router, in Connect, gRPC and gRPC-Web.

The provider is a real ``plugin-di serve`` process that joined the host by itself
(``PLUGIN_DI_HOST_URL``), admitted by an allow-list entry; so is the caller (``caller=``).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import grpc
import pytest

from examples.kv.gen.kv.v1 import kv_pb2
from plugin_di.gen.connectplugin.v1 import handshake_pb2, registry_pb2
from plugin_di.gen.grpc.health.v1 import health_pb2
from plugin_di.plugin import env
from tests.interop.support.buf import BUF, buf_curl, needs_buf
from tests.support.processes import PluginProcess, running
from tools.protogen import generate_grpc_stubs

ROOT = Path(__file__).resolve().parents[2]
KV_PROTO = ROOT / "examples" / "kv" / "proto"
PROTOCOLS = [("connect", []), ("grpc", ["--http2-prior-knowledge"]), ("grpcweb", [])]
HANDSHAKE = {
    "magic_cookie_key": env.DEFAULT_MAGIC_COOKIE_KEY,
    "magic_cookie_value": env.DEFAULT_MAGIC_COOKIE_VALUE,
    "core_protocol_version": 1,
    "app_protocol_version": 1,
    "self_id": "caller",
}


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[PluginProcess, PluginProcess]]:
    """A host admitting ``kv`` (to provide kv) and ``caller``, and a KV plugin joined to it."""
    host_args = ["-m", "plugin_di.cli", "host", "--allow", "kv=kv", "--allow", "caller="]
    with running(host_args) as host:
        kv_args = ["-m", "plugin_di.cli", "serve", "examples.kv.plugin:plugin"]
        with running(kv_args, {env.HOST_URL: host.url}) as kv:
            yield host, kv


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    out = tmp_path_factory.mktemp("grpc_stubs")
    package = generate_grpc_stubs(out)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(out))
        return {
            name: importlib.import_module(f"{package}.{module}")
            for name, module in {
                "handshake": "connectplugin.v1.handshake_pb2_grpc",
                "registry": "connectplugin.v1.registry_pb2_grpc",
                "health": "grpc.health.v1.health_pb2_grpc",
            }.items()
        }


def _discover(registry: object, metadata: list[tuple[str, str]]) -> str:
    """The kv provider's id, once the plugin has registered (bounded wait)."""
    deadline = time.monotonic() + 15
    while True:
        try:
            found = registry.DiscoverService(  # type: ignore[attr-defined]
                registry_pb2.DiscoverServiceRequest(service_type="kv"),
                metadata=metadata,
                timeout=5,
            )
            return str(found.endpoint.provider_id)
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_grpcio_handshakes_discovers_and_calls_through_the_router(
    platform: tuple[PluginProcess, PluginProcess], stubs: dict[str, ModuleType]
) -> None:
    host, _ = platform
    with grpc.insecure_channel(host.line.address) as channel:
        identity = (
            stubs["handshake"]
            .HandshakeServiceStub(channel)
            .Handshake(handshake_pb2.HandshakeRequest(**HANDSHAKE), timeout=10)
        )
        assert identity.runtime_id.startswith("caller-")
        metadata = [
            ("x-plugin-runtime-id", identity.runtime_id),
            ("authorization", f"Bearer {identity.runtime_token}"),
        ]
        provider = _discover(stubs["registry"].ServiceRegistryStub(channel), metadata)
        base = f"/services/kv/{provider}/kv.v1.KVService/"

        def method(name: str, response: type, stream: bool = False) -> object:
            call = channel.unary_stream if stream else channel.unary_unary
            return call(
                base + name,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response.FromString,  # type: ignore[attr-defined]
            )

        put = method("Put", kv_pb2.PutResponse)
        get = method("Get", kv_pb2.GetResponse)
        watch = method("Watch", kv_pb2.WatchEvent, stream=True)
        put(kv_pb2.PutRequest(key="grpcio", value=b"v1"), metadata=metadata, timeout=10)  # type: ignore[operator]
        got = get(kv_pb2.GetRequest(key="grpcio"), metadata=metadata, timeout=10)  # type: ignore[operator]
        assert (got.value, got.found) == (b"v1", True)
        events = watch(kv_pb2.WatchRequest(prefix="grpcio"), metadata=metadata, timeout=10)  # type: ignore[operator]
        assert next(events).key  # the stream opened through the router (the start marker)
        events.cancel()
        with pytest.raises(grpc.RpcError) as refused:  # the router checks credentials
            get(kv_pb2.GetRequest(key="grpcio"), timeout=10)  # type: ignore[operator]
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        health = (
            stubs["health"].HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING


@needs_buf
@pytest.mark.parametrize(("protocol", "flags"), PROTOCOLS)
def test_buf_curl_through_the_host(
    platform: tuple[PluginProcess, PluginProcess], protocol: str, flags: list[str]
) -> None:
    host, _ = platform
    listed = buf_curl(host.url, "--http2-prior-knowledge", "--list-services")
    assert listed.returncode == 0, listed.stderr
    assert "connectplugin.v1.ServiceRegistry" in listed.stdout.split()
    common = ["--protocol", protocol, *flags]
    handshake = buf_curl(
        host.url + "/connectplugin.v1.HandshakeService/Handshake",
        *common,
        "-d",
        json.dumps(HANDSHAKE),
    )
    assert handshake.returncode == 0, handshake.stderr
    identity = json.loads(handshake.stdout)
    auth = [
        "-H",
        f"x-plugin-runtime-id: {identity['runtimeId']}",
        "-H",
        f"authorization: Bearer {identity['runtimeToken']}",
    ]
    provider = ""
    for _ in range(150):  # bounded: the plugin registers within a few seconds
        found = buf_curl(
            host.url + "/connectplugin.v1.ServiceRegistry/DiscoverService",
            *common,
            *auth,
            "-d",
            '{"service_type": "kv"}',
        )
        if found.returncode == 0:
            provider = json.loads(found.stdout)["endpoint"]["providerId"]
            break
        time.sleep(0.1)
    assert provider, found.stderr
    routed = f"{host.url}/services/kv/{provider}/kv.v1.KVService/"
    schema = ["--schema", str(KV_PROTO)]
    key = f"buf-{protocol}"
    put = buf_curl(
        routed + "Put", *schema, *common, *auth, "-d", json.dumps({"key": key, "value": "aGk="})
    )
    assert put.returncode == 0, put.stderr
    get = buf_curl(routed + "Get", *schema, *common, *auth, "-d", json.dumps({"key": key}))
    assert get.returncode == 0, get.stderr
    assert json.loads(get.stdout) == {"value": "aGk=", "found": True}
    denied = buf_curl(routed + "Get", *schema, *common, "-d", json.dumps({"key": key}))
    assert denied.returncode != 0
    assert "unauthenticated" in denied.stderr.lower()


def test_buf_is_found() -> None:
    """The dev extras install buf; the interop tests above must not silently skip."""
    assert BUF is not None
    assert subprocess.run([BUF, "--version"], capture_output=True, check=False).returncode == 0
