"""PluginClient against real served plugins: the default (HTTP/1.1, gRPC over h2c), h2c,
HTTP/1.1, Unix socket, TLS."""

from __future__ import annotations

from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.launch.client import PluginClient, PluginClientError
from plugin_di.plugin.definition import Plugin
from plugin_di.rpc.tls import ClientTLS, generate_ephemeral_cert
from tests.support.inloop import serving


async def _exercise(client: PluginClient) -> None:
    kv = client.dispense(KVServiceClient)
    assert isinstance(kv, KVServiceClient)
    assert client.dispense("kv") is kv
    await kv.put(pb.PutRequest(key="a", value=b"1"))
    assert (await kv.get(pb.GetRequest(key="a"))).value == b"1"
    watch = kv.watch(pb.WatchRequest(prefix="a"))
    assert (await anext(watch)).key == "_watch_started"
    await kv.put(pb.PutRequest(key="ab", value=b"2"))
    assert (await anext(watch)).key == "ab"
    await watch.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("http_version", "protocol"),
    [
        ("auto", ProtocolType.CONNECT),
        ("auto", ProtocolType.GRPC),
        ("auto", ProtocolType.GRPC_WEB),
        ("h2", ProtocolType.CONNECT),
        ("h2", ProtocolType.GRPC),
        ("h2", ProtocolType.GRPC_WEB),
        ("http1", ProtocolType.CONNECT),
        ("http1", ProtocolType.GRPC_WEB),
    ],
)
async def test_tcp(http_version: str, protocol: ProtocolType) -> None:
    plugin = make_plugin()
    async with (
        serving(plugin) as (_, line, stdout),
        PluginClient(line.url, plugin, http_version=http_version, protocol=protocol) as client,
    ):
        assert stdout.getvalue() == line.format() + "\n"
        assert client.app_protocol_version == 1
        assert [p.name for p in client.handshake.plugins] == ["kv"]
        await _exercise(client)


async def test_unix_socket(tmp_path: Path) -> None:
    plugin = make_plugin()
    async with (
        serving(plugin, uds=tmp_path / "kv.sock") as (_, line, _out),
        PluginClient(line.url, plugin) as client,
    ):
        assert line.network == "unix"
        assert line.address == str(tmp_path / "kv.sock")
        assert (tmp_path / "kv.sock").stat().st_mode & 0o777 == 0o600
        await _exercise(client)


async def test_unix_socket_dir_from_environment(tmp_path: Path) -> None:
    plugin = make_plugin()
    env = {"PLUGIN_UNIX_SOCKET_DIR": str(tmp_path)}
    async with (
        serving(plugin, environ=env) as (_, line, _out),
        PluginClient(line.url, plugin) as client,
    ):
        assert line.network == "unix"
        assert Path(line.address).parent == tmp_path
        await _exercise(client)


async def test_tls_with_certificate_from_handshake_line(tmp_path: Path) -> None:
    pair = generate_ephemeral_cert("kv-plugin")
    (tmp_path / "cert.pem").write_bytes(pair.cert_pem)
    (tmp_path / "key.pem").write_bytes(pair.key_pem)
    plugin = make_plugin()
    async with serving(plugin, tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem") as (
        _,
        line,
        _out,
    ):
        assert line.cert_der == pair.cert_der
        assert line.url.startswith("https://127.0.0.1:")
        from plugin_di.rpc.tls import der_to_pem

        tls = ClientTLS(ca_pem=der_to_pem(line.cert_der))
        for version in ("h2", "http1"):
            async with PluginClient(line.url, plugin, tls=tls, http_version=version) as client:
                await _exercise(client)


async def test_refusals() -> None:
    plugin = make_plugin()
    async with serving(plugin, app_protocol_versions=[2, 3]) as (_, line, _out):
        async with PluginClient(line.url, plugin, app_protocol_versions=[1, 3]) as client:
            assert client.app_protocol_version == 3
        with pytest.raises(ConnectError) as version:
            async with PluginClient(line.url, plugin, app_protocol_versions=[1]):
                pass
        assert version.value.code == Code.FAILED_PRECONDITION
        assert "[1]" in version.value.message
        assert "[2, 3]" in version.value.message
        assert line.url in version.value.message
        with pytest.raises(ConnectError) as cookie:
            async with PluginClient(
                line.url, plugin, app_protocol_versions=[2], magic_cookie_value="wrong"
            ):
                pass
        assert cookie.value.code == Code.INVALID_ARGUMENT
        other = Plugin(name="cache", services=make_plugin().services)
        with pytest.raises(ConnectError) as unknown:
            async with PluginClient(line.url, other, app_protocol_versions=[2]):
                pass
        assert unknown.value.code == Code.NOT_FOUND
        assert "'cache'" in unknown.value.message


async def test_misuse() -> None:
    plugin = make_plugin()
    async with serving(plugin) as (_, line, _out):
        client = PluginClient(line.url, plugin)
        with pytest.raises(PluginClientError, match="connect"):
            client.dispense(KVServiceClient)
        await client.connect()
        with pytest.raises(PluginClientError, match="no plugin named 'nope'"):
            client.dispense("nope")
        await client.close()
        await client.close()
        with pytest.raises(PluginClientError, match="closed"):
            client.dispense(KVServiceClient)


async def test_two_plugins_in_one_process() -> None:
    from examples.logger.plugin import make_plugin as make_logger
    from plugin_di.gen.capability.logger.v1 import logger_pb2
    from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient

    plugins = [make_plugin(), make_logger()]
    async with (
        serving(plugins) as (_, line, _out),
        PluginClient(line.url, plugins) as client,
    ):
        assert sorted(p.name for p in client.handshake.plugins) == ["kv", "logger"]
        await _exercise(client)
        await client.dispense("logger").log(logger_pb2.LogRequest(level="info", message="hi"))  # type: ignore[attr-defined]
        assert isinstance(client.dispense(LoggerClient), LoggerClient)
        # A client that asks for only one of them is fine too.
        async with PluginClient(line.url, plugins[1]) as only_logger:
            assert [p.name for p in only_logger.handshake.plugins] == ["logger"]
