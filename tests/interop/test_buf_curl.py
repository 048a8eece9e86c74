"""``buf curl`` (schema from server reflection) calls a served plugin over Connect, gRPC and
gRPC-Web; plain HTTP clients speak Connect JSON and binary to it."""

from __future__ import annotations

import json
import struct

import httpx
import pytest

from examples.kv.gen.kv.v1 import kv_pb2
from tests.interop.support.buf import buf_curl, needs_buf
from tests.support.processes import PluginProcess

# (buf curl --protocol, extra flags): gRPC needs HTTP/2; the others run over HTTP/1.1.
PROTOCOLS = [
    ("connect", []),
    ("connect", ["--http2-prior-knowledge"]),
    ("grpc", ["--http2-prior-knowledge"]),
    ("grpcweb", []),
]


@needs_buf
@pytest.mark.parametrize("reflect", ["grpc-v1", "grpc-v1alpha"])
def test_list_services_by_reflection(kv_process: PluginProcess, reflect: str) -> None:
    result = buf_curl(
        kv_process.url, "--http2-prior-knowledge", "--reflect-protocol", reflect, "--list-services"
    )
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert {"kv.v1.KVService", "grpc.health.v1.Health", "connectplugin.v1.HandshakeService"} <= (
        services
    )


@needs_buf
@pytest.mark.parametrize(("protocol", "flags"), PROTOCOLS)
def test_unary_calls(kv_process: PluginProcess, protocol: str, flags: list[str]) -> None:
    key = f"buf/{protocol}/{len(flags)}"
    base = kv_process.url + "/kv.v1.KVService/"
    put = buf_curl(
        base + "Put",
        "--protocol",
        protocol,
        *flags,
        "-d",
        json.dumps({"key": key, "value": "aGk="}),
    )
    assert put.returncode == 0, put.stderr
    get = buf_curl(base + "Get", "--protocol", protocol, *flags, "-d", json.dumps({"key": key}))
    assert get.returncode == 0, get.stderr
    assert json.loads(get.stdout) == {"value": "aGk=", "found": True}
    bad = buf_curl(base + "Put", "--protocol", protocol, *flags, "-d", '{"key": ""}')
    assert bad.returncode != 0
    assert "invalid_argument" in bad.stderr.lower().replace(" ", "_")
    assert "key cannot be empty" in bad.stderr
    health = buf_curl(
        kv_process.url + "/grpc.health.v1.Health/Check", "--protocol", protocol, *flags, "-d", "{}"
    )
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}


@needs_buf
@pytest.mark.parametrize(("protocol", "flags"), PROTOCOLS)
def test_server_stream(probe_process: PluginProcess, protocol: str, flags: list[str]) -> None:
    result = buf_curl(
        probe_process.url + "/kv.v1.KVService/Watch",
        "--protocol",
        protocol,
        *flags,
        "-d",
        '{"prefix": "s"}',
    )
    assert result.returncode == 0, result.stderr
    decoder, text, keys = json.JSONDecoder(), result.stdout.strip(), []
    while text:
        event, end = decoder.raw_decode(text)
        keys.append(event["key"])
        text = text[end:].strip()
    assert keys == ["s0", "s1", "s2"]


def test_connect_json_and_binary_over_plain_http(probe_process: PluginProcess) -> None:
    url = probe_process.url + "/kv.v1.KVService/"
    with httpx.Client(http1=True, timeout=10) as http:
        as_json = http.post(url + "Get", json={"key": "k"})
        assert as_json.status_code == 200
        assert as_json.headers["content-type"] == "application/json"
        assert as_json.json() == {"value": "b3JpZ2luYWw=", "found": True}
        binary = http.post(
            url + "Get",
            content=kv_pb2.GetRequest(key="k").SerializeToString(),
            headers={"content-type": "application/proto"},
        )
        assert binary.headers["content-type"] == "application/proto"
        assert kv_pb2.GetResponse.FromString(binary.content).value == b"original"
        # Connect server streaming with JSON: enveloped messages, then an end-of-stream frame.
        body = json.dumps({"prefix": "j"}).encode()
        stream = http.post(
            url + "Watch",
            content=struct.pack(">BI", 0, len(body)) + body,
            headers={"content-type": "application/connect+json"},
        )
        frames, data = [], stream.content
        while data:
            flags, size = struct.unpack(">BI", data[:5])
            frames.append((flags, json.loads(data[5 : 5 + size])))
            data = data[5 + size :]
        assert [f[1]["key"] for f in frames[:-1]] == ["j0", "j1", "j2"]
        assert frames[-1] == (2, {})
