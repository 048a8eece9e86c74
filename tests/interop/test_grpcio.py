"""A grpcio client, generated at test time from the project's own protos, calls a served plugin."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import grpc
import pytest
from connectrpc_grpcreflect._gen.grpc.reflection.v1 import reflection_pb as v1
from connectrpc_grpcreflect._gen.grpc.reflection.v1alpha import reflection_pb as v1alpha
from google.protobuf import descriptor_pb2
from protobuf import Oneof

from examples.kv.gen.kv.v1 import kv_pb2
from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.gen.grpc.health.v1 import health_pb2
from tests.support.processes import PluginProcess, running
from tools.protogen import generate_grpc_stubs


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    """grpcio stubs generated from the project's protos, importing its committed messages."""
    out = tmp_path_factory.mktemp("grpc_stubs")
    package = generate_grpc_stubs(out)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(out))
        return {
            "kv": importlib.import_module(f"{package}.kv.v1.kv_pb2_grpc"),
            "health": importlib.import_module(f"{package}.grpc.health.v1.health_pb2_grpc"),
            "registry": importlib.import_module(f"{package}.connectplugin.v1.registry_pb2_grpc"),
        }


@pytest.fixture
def channel(kv_process: PluginProcess) -> grpc.Channel:
    with grpc.insecure_channel(kv_process.line.address) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


def test_kv_unary_and_server_stream(stubs: dict[str, ModuleType], channel: grpc.Channel) -> None:
    kv = stubs["kv"].KVServiceStub(channel)
    watch = kv.Watch(kv_pb2.WatchRequest(prefix="g/"), timeout=10)
    first = next(watch)
    assert first.key == "_watch_started"
    kv.Put(kv_pb2.PutRequest(key="g/1", value=b"one"), timeout=10)
    got = kv.Get(kv_pb2.GetRequest(key="g/1"), timeout=10)
    assert (got.value, got.found) == (b"one", True)
    assert list(kv.List(kv_pb2.ListRequest(prefix="g/"), timeout=10).keys) == ["g/1"]
    assert kv.Delete(kv_pb2.DeleteRequest(key="g/1"), timeout=10).found
    events = [next(watch), next(watch)]
    assert [(e.type, e.key) for e in events] == [
        (kv_pb2.EVENT_TYPE_PUT, "g/1"),
        (kv_pb2.EVENT_TYPE_DELETE, "g/1"),
    ]
    watch.cancel()


def test_kv_error_status(stubs: dict[str, ModuleType], channel: grpc.Channel) -> None:
    kv = stubs["kv"].KVServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        kv.Put(kv_pb2.PutRequest(key="", value=b"x"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "key cannot be empty"


def test_unknown_method_is_unimplemented(channel: grpc.Channel) -> None:
    call = channel.unary_unary(
        "/kv.v1.KVService/Nope",
        request_serializer=kv_pb2.GetRequest.SerializeToString,
        response_deserializer=kv_pb2.GetResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as info:
        call(kv_pb2.GetRequest(key="a"), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_health(stubs: dict[str, ModuleType], channel: grpc.Channel) -> None:
    health = stubs["health"].HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == serving
    named = health_pb2.HealthCheckRequest(service="kv.v1.KVService")
    assert health.Check(named, timeout=10).status == serving
    listed = health.List(health_pb2.HealthListRequest(), timeout=10)
    assert {"", "kv", "kv.v1.KVService"} <= set(listed.statuses)
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    stream = health.Watch(health_pb2.HealthCheckRequest(), timeout=10)
    assert next(stream).status == serving
    stream.cancel()


@pytest.mark.parametrize(("package", "messages"), [("v1", v1), ("v1alpha", v1alpha)])
def test_server_reflection(channel: grpc.Channel, package: str, messages: ModuleType) -> None:
    call = channel.stream_stream(
        f"/grpc.reflection.{package}.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda m: m.to_binary(),
        response_deserializer=messages.ServerReflectionResponse.from_binary,
    )
    requests = [
        messages.ServerReflectionRequest(message_request=Oneof("list_services", "")),
        messages.ServerReflectionRequest(
            message_request=Oneof("file_containing_symbol", "kv.v1.KVService")
        ),
    ]
    listed, described = list(call(iter(requests), timeout=10))
    names = {s.name for s in listed.message_response.value.service}
    assert {
        "kv.v1.KVService",
        "grpc.health.v1.Health",
        "connectplugin.health.v1.HealthService",
        "connectplugin.v1.HandshakeService",
        "connectplugin.v1.PluginControl",
        "connectplugin.v1.PluginIdentity",
        "grpc.reflection.v1.ServerReflection",
    } <= names
    files = described.message_response.value.file_descriptor_proto
    parsed = [descriptor_pb2.FileDescriptorProto.FromString(bytes(f)) for f in files]
    kv_file = next(f for f in parsed if f.name == "kv/v1/kv.proto")
    assert [m.name for m in kv_file.service[0].method] == ["Get", "Put", "Delete", "Watch", "List"]


def test_host_errors_reach_grpcio_with_their_codes(stubs: dict[str, ModuleType]) -> None:
    """The host's errors are real gRPC statuses too (trailers, not a bare end of stream)."""
    with (
        running(["-m", "plugin_di.cli", "host"]) as host,
        grpc.insecure_channel(host.line.address) as ch,
    ):
        registry = stubs["registry"].ServiceRegistryStub(ch)
        with pytest.raises(grpc.RpcError) as refused:
            registry.DiscoverService(registry_pb2.DiscoverServiceRequest(service_type="logger"))
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        unknown = ch.unary_unary("/connectplugin.v1.ServiceRegistry/NoSuchMethod")
        with pytest.raises(grpc.RpcError) as missing:
            unknown(b"")
        assert missing.value.code() is grpc.StatusCode.UNIMPLEMENTED
