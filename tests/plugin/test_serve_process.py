"""The KV plugin served as a real process: handshake line, every method over h2c and
HTTP/1.1, watch, errors, and a graceful stop with a call in flight."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from examples.kv.store import WATCH_STARTED
from plugin_di.gen.connectplugin.health.v1 import health_pb2 as health_pb
from plugin_di.gen.connectplugin.health.v1.health_connect import HealthServiceClient
from plugin_di.gen.connectplugin.v1 import handshake_pb2 as hs
from plugin_di.gen.connectplugin.v1 import lifecycle_pb2 as lc
from plugin_di.gen.connectplugin.v1.handshake_connect import HandshakeServiceClient
from plugin_di.gen.connectplugin.v1.lifecycle_connect import PluginControlClient
from plugin_di.launch.client import PluginClient
from plugin_di.plugin.env import DEFAULT_MAGIC_COOKIE_KEY, DEFAULT_MAGIC_COOKIE_VALUE
from plugin_di.rpc.tls import ClientTLS, der_to_pem, generate_ephemeral_cert
from tests.support.processes import SERVE_KV, PluginProcess, http_client, running, spawn

FAST = {"send_compression": None, "accept_compression": []}


@pytest.fixture(scope="module")
def kv() -> Iterator[PluginProcess]:
    with running(SERVE_KV, {"PLUGIN_DI_MAX_MESSAGE_BYTES": "65536"}) as plugin:
        yield plugin


def test_handshake_line(kv: PluginProcess) -> None:
    line = kv.line
    assert (line.core_version, line.app_version, line.network, line.protocol) == (
        1,
        1,
        "tcp",
        "connect",
    )
    assert line.address.startswith("127.0.0.1:")
    assert int(line.address.rpartition(":")[2]) > 0
    assert kv.line.cert_der == b""


@pytest.mark.parametrize("version", ["h2", "h1"])
async def test_every_method_and_watch(kv: PluginProcess, version: str) -> None:
    prefix = f"{version}/"
    async with http_client(version) as http:
        client = KVServiceClient(kv.url, http_client=http, **FAST)  # type: ignore[arg-type]
        watch = client.watch(pb.WatchRequest(prefix=prefix))
        assert (await anext(watch)).key == WATCH_STARTED
        await client.put(pb.PutRequest(key=prefix + "a", value=b"1"))
        await client.put(pb.PutRequest(key=prefix + "b", value=b"2"))
        got = await client.get(pb.GetRequest(key=prefix + "a"))
        assert (got.value, got.found) == (b"1", True)
        assert (await client.get(pb.GetRequest(key=prefix + "a"), use_get=True)).value == b"1"
        listed = await client.list(pb.ListRequest(prefix=prefix))
        assert list(listed.keys) == [prefix + "a", prefix + "b"]
        assert (await client.delete(pb.DeleteRequest(key=prefix + "a"))).found
        events = [await anext(watch) for _ in range(3)]
        assert [(e.type, e.key) for e in events] == [
            (pb.EVENT_TYPE_PUT, prefix + "a"),
            (pb.EVENT_TYPE_PUT, prefix + "b"),
            (pb.EVENT_TYPE_DELETE, prefix + "a"),
        ]
        await watch.aclose()  # type: ignore[attr-defined]
        with pytest.raises(ConnectError) as info:
            await client.put(pb.PutRequest(key="", value=b"x"))
        assert (info.value.code, info.value.message) == (
            Code.INVALID_ARGUMENT,
            "key cannot be empty",
        )


async def test_wire_errors(kv: PluginProcess) -> None:
    async with http_client("h2") as http:
        unknown = await http.post(
            kv.url + "/kv.v1.KVService/Nope",
            headers={"content-type": "application/json"},
            content=b"{}",
        )
        assert unknown.status == 404
        assert unknown.json()["code"] == "unimplemented"
        malformed = await http.post(
            kv.url + "/kv.v1.KVService/Get",
            headers={"content-type": "application/proto"},
            content=b"\xff\xff\xff",
        )
        assert malformed.json()["code"] == "invalid_argument"


@pytest.mark.parametrize("version", ["h2", "h1"])
async def test_oversized_body_is_refused_and_connection_survives(
    kv: PluginProcess, version: str
) -> None:
    # 70 kB is above the 64 KiB limit and above HTTP/2's initial flow-control window.
    async with http_client(version) as http:
        client = KVServiceClient(kv.url, http_client=http, **FAST)  # type: ignore[arg-type]
        for _ in range(5):
            with pytest.raises(ConnectError) as info:
                await client.put(pb.PutRequest(key="big", value=b"x" * 70000))
            assert info.value.code == Code.RESOURCE_EXHAUSTED
            assert (await client.get(pb.GetRequest(key="big"))).found is False


def _handshake(**fields: object) -> hs.HandshakeRequest:
    request: dict[str, object] = {
        "core_protocol_version": 1,
        "app_protocol_versions": [1],
        "magic_cookie_key": DEFAULT_MAGIC_COOKIE_KEY,
        "magic_cookie_value": DEFAULT_MAGIC_COOKIE_VALUE,
        "requested_plugins": ["kv"],
    }
    request.update(fields)
    return hs.HandshakeRequest(**request)


async def test_handshake_over_the_wire(kv: PluginProcess) -> None:
    async with http_client("h1") as http:
        client = HandshakeServiceClient(kv.url, http_client=http, **FAST)  # type: ignore[arg-type]
        response = await client.handshake(_handshake())
        assert [p.name for p in response.plugins] == ["kv"]
        with pytest.raises(ConnectError) as cookie:
            await client.handshake(_handshake(magic_cookie_value="wrong"))
        assert cookie.value.code == Code.INVALID_ARGUMENT
        with pytest.raises(ConnectError) as version:
            await client.handshake(_handshake(app_protocol_versions=[7, 8]))
        assert version.value.code == Code.FAILED_PRECONDITION
        assert "[7, 8]" in version.value.message
        assert "[1]" in version.value.message


async def test_internal_error_is_generic_and_logged_on_stderr() -> None:
    with running(["-m", "plugin_di.cli", "serve", "tests.support.probe:served"]) as probe:
        async with http_client("h2") as http:
            client = KVServiceClient(probe.url, http_client=http, **FAST)  # type: ignore[arg-type]
            with pytest.raises(ConnectError) as info:
                await client.get(pb.GetRequest(key="boom"))
            assert (info.value.code, info.value.message) == (Code.INTERNAL, "internal error")
            assert "hunter2" not in info.value.message
        probe.proc.send_signal(signal.SIGTERM)
        assert probe.wait() == 0
        assert "hunter2" in probe.stderr()


async def test_shutdown_rpc_with_a_call_in_flight() -> None:
    with running(["-m", "examples.kv"]) as plugin:
        async with http_client("h2") as http:
            kv_client = KVServiceClient(plugin.url, http_client=http, **FAST)  # type: ignore[arg-type]
            health = HealthServiceClient(plugin.url, http_client=http, **FAST)  # type: ignore[arg-type]
            control = PluginControlClient(plugin.url, http_client=http, **FAST)  # type: ignore[arg-type]
            await kv_client.put(pb.PutRequest(key="k", value=b"v"))
            watch = kv_client.watch(pb.WatchRequest(prefix="k"))
            assert (await anext(watch)).key == WATCH_STARTED
            statuses = health.watch(health_pb.HealthCheckRequest())
            assert (await anext(statuses)).status == health_pb.SERVING_STATUS_SERVING
            ack = await control.shutdown(lc.ShutdownRequest(grace_period_seconds=10, reason="test"))
            assert ack.acknowledged
            # The in-flight watch completes cleanly (no error) and health flips.
            rest = [e async for e in watch]
            assert rest == []
            assert (await anext(statuses)).status == health_pb.SERVING_STATUS_NOT_SERVING
            await asyncio.to_thread(plugin.wait)
        assert plugin.proc.returncode == 0


async def test_sigterm_lets_a_unary_call_in_flight_finish() -> None:
    with running(["-m", "plugin_di.cli", "serve", "tests.support.probe:served"]) as probe:
        async with http_client("h2") as http:
            client = KVServiceClient(probe.url, http_client=http, **FAST)  # type: ignore[arg-type]
            call = asyncio.create_task(client.get(pb.GetRequest(key="until-stop")))
            for _ in range(500):
                if (await client.delete(pb.DeleteRequest())).found:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the call never reached the plugin")
            probe.proc.send_signal(signal.SIGTERM)
            response = await asyncio.wait_for(call, 20)
            assert response.value == b"finished"
        assert await asyncio.to_thread(probe.wait) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_cleanly(signum: signal.Signals) -> None:
    with running(SERVE_KV) as plugin:
        async with http_client("h1") as http:
            client = KVServiceClient(plugin.url, http_client=http, **FAST)  # type: ignore[arg-type]
            watch = client.watch(pb.WatchRequest())
            assert (await anext(watch)).key == WATCH_STARTED
            plugin.proc.send_signal(signum)
            assert [e async for e in watch] == []
        # a clean stop either way; SIGINT exits 130, as a shell reports Ctrl-C
        assert await asyncio.to_thread(plugin.wait) == (130 if signum == signal.SIGINT else 0)
        assert plugin.proc.stdout is not None
        assert plugin.proc.stdout.read() == ""  # exactly one line on stdout


def test_wrong_cookie_in_environment_refuses_to_start() -> None:
    proc = spawn(SERVE_KV, {DEFAULT_MAGIC_COOKIE_KEY: "not-the-cookie"})
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert out == ""
    assert "magic cookie" in err


def test_host_versions_without_overlap_refuse_to_start() -> None:
    proc = spawn(SERVE_KV, {"PLUGIN_PROTOCOL_VERSIONS": "2,3"})
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert out == ""
    assert "[2, 3]" in err
    assert "[1]" in err


def test_cli_refuses_bad_arguments() -> None:
    not_a_plugin = spawn(["-m", "plugin_di.cli", "serve", "examples.kv.store:WATCH_BUFFER"])
    _, err = not_a_plugin.communicate(timeout=20)
    assert not_a_plugin.returncode == 2
    assert "not a Plugin" in err
    missing = spawn(["-m", "plugin_di.cli", "serve", "examples.nope:plugin"])
    _, err = missing.communicate(timeout=20)
    assert missing.returncode == 2
    assert "cannot import module 'examples.nope'" in err
    half_tls = spawn([*SERVE_KV, "--tls-cert", "x.pem"])
    _, err = half_tls.communicate(timeout=20)
    assert half_tls.returncode == 2
    assert "--tls-key" in err


async def test_cli_tls_and_unix_socket(tmp_path: Path) -> None:
    pair = generate_ephemeral_cert("kv")
    (tmp_path / "c.pem").write_bytes(pair.cert_pem)
    (tmp_path / "k.pem").write_bytes(pair.key_pem)
    tls_args = ["--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem")]
    with running([*SERVE_KV, *tls_args]) as tls_plugin:
        assert tls_plugin.line.cert_der == pair.cert_der
        client_tls = ClientTLS(ca_pem=der_to_pem(tls_plugin.line.cert_der))
        async with PluginClient(tls_plugin.url, make_plugin(), tls=client_tls) as plugins:
            kv = plugins.dispense(KVServiceClient)
            await kv.put(pb.PutRequest(key="t", value=b"tls"))
            assert (await kv.get(pb.GetRequest(key="t"))).value == b"tls"
    sock = tmp_path / "kv.sock"
    with running([*SERVE_KV, "--uds", str(sock)]) as uds_plugin:
        assert (uds_plugin.line.network, uds_plugin.line.address) == ("unix", str(sock))
        async with PluginClient(uds_plugin.url, make_plugin()) as plugins:
            kv = plugins.dispense(KVServiceClient)
            await kv.put(pb.PutRequest(key="u", value=b"uds"))
            assert (await kv.get(pb.GetRequest(key="u"))).value == b"uds"
    assert not sock.exists()  # removed on exit


def test_bad_environment_values_refuse_to_start() -> None:
    for name, value in (
        ("PLUGIN_DI_SHUTDOWN_GRACE", "soon"),
        ("PLUGIN_DI_MAX_MESSAGE_BYTES", "-1"),
    ):
        proc = spawn(SERVE_KV, {name: value})
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 1
        assert out == ""
        assert name in err
