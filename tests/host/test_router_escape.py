"""Routed paths cannot escape the registered service (issue 13, item 1).

A real provider process (``plugin-di serve examples.kv.plugin:plugin``) registers
``kv.v1.KVService`` with a real host. Dot segments, encoded dots and slashes and other
services' names in a routed path are sent as written (raw HTTP/1.1 and HTTP/2) in Connect,
gRPC and gRPC-Web, to the host's endpoint and to its fast channel (the short path and the
splice). Each is refused by the router; afterwards the provider still serves (Shutdown was
never reached) and the answers are the router's, not GetPluginInfo's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin as make_kv_plugin
from plugin_di.clock import FakeClock
from plugin_di.gen.grpc.health.v1 import health_pb2
from plugin_di.gen.grpc.health.v1.health_connect import HealthClient
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from plugin_di.plugin.host_client import HostClient
from plugin_di.rpc.transport import connect_client, http_client
from tests.host.support import CONTENT_TYPES, Answer, h1_request, h2_request, request_body
from tests.support.host import ADMISSION, join_host
from tests.support.processes import SERVE_KV, PluginProcess, running

ROOT = Path(__file__).resolve().parents[2]

TARGETS = (
    "connectplugin.v1.PluginControl/Shutdown",
    "connectplugin.v1.PluginIdentity/GetPluginInfo",
)
ESCAPES = (
    "kv.v1.KVService/../{}",
    "kv.v1.KVService/%2e%2e/{}",
    "kv.v1.KVService/%2E%2E/{}",
    "kv.v1.KVService/..%2f{}",
    "kv.v1.KVService%2f..%2f{}",
    "kv.v1.KVService/../../../{}",
    "kv.v1.KVService/./../{}",
    "kv.v1.KVService/.%2e/{}",
    "kv.v1.KVService//../{}",
)


@pytest.fixture(scope="module")
def provider() -> Iterator[PluginProcess]:
    with running(SERVE_KV) as process:
        yield process


@pytest.fixture
async def routed(provider: PluginProcess) -> AsyncIterator[tuple[Host, str, dict[str, str]]]:
    """A host with a fast channel on TCP; the provider registered; a caller's credentials."""
    host = Host(
        HostConfig(sweep_interval=1e9),
        clock=FakeClock(),
        local_bind="127.0.0.1:0",
        admission=ADMISSION,
    )
    await host.start("127.0.0.1:0")
    registrant = await join_host(host.url, make_kv_plugin(), "kv", provider.url)
    caller = HostClient(host.url)
    try:
        identity = await caller.handshake("app")
        assert registrant.identity is not None
        auth = {
            "authorization": f"Bearer {identity.runtime_token}",
            "x-plugin-runtime-id": identity.runtime_id,
        }
        yield host, f"/services/kv/{registrant.identity.runtime_id}/", auth
    finally:
        await caller.close()
        await registrant.close()
        await host.stop()


GET_K = kv_pb2.GetRequest(key="k").SerializeToString()


async def _send(
    how: str, host: Host, path: str, protocol: str, auth: dict[str, str], body: bytes = b""
) -> Answer:
    """``path`` as written, over h2 or HTTP/1.1 to the host's endpoint or its fast channel;
    ``body`` defaults to an empty message, which Shutdown and GetPluginInfo would accept."""
    headers = {"content-type": CONTENT_TYPES[protocol], **auth}
    if protocol != "connect":
        headers["te"] = "trailers"
    body = body or request_body(protocol)
    if how == "h2":
        return await h2_request(host.url.removeprefix("http://"), path, headers, body)
    endpoint = host.url if how == "h1" else host.local_url
    assert endpoint is not None
    return await h1_request(endpoint.split("://", 1)[1], path, headers, body)


async def _still_serving(provider: PluginProcess) -> None:
    """The provider did not start stopping: alive, SERVING, answering KV calls."""
    assert provider.proc.poll() is None
    async with http_client(provider.url) as http:
        health = connect_client(HealthClient, provider.url, http)
        answer = await health.check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        kv = connect_client(KVServiceClient, provider.url, http)
        assert not (await kv.get(kv_pb2.GetRequest(key="escape-check"))).found


WAYS = [
    ("h2", "connect"),
    ("h2", "grpc"),
    ("h2", "grpc-web"),
    ("h1", "connect"),
    ("h1", "grpc-web"),
    ("fast", "connect"),  # the fast channel's short path and splice
    ("fast", "grpc-web"),  # the fast channel's ASGI router
]


@pytest.mark.parametrize(("how", "protocol"), WAYS)
async def test_escapes_are_refused_and_reach_nothing(
    provider: PluginProcess,
    routed: tuple[Host, str, dict[str, str]],
    how: str,
    protocol: str,
) -> None:
    host, prefix, auth = routed
    for target in TARGETS:
        for escape in ESCAPES:
            answer = await _send(how, host, prefix + escape.format(target), protocol, auth)
            assert answer.code(protocol) == "invalid_argument", (escape, answer)
            assert answer.message(protocol).startswith("invalid routed path"), answer
            assert b"selfId" not in answer.body
        # A path naming another service outright: not the service the provider registered.
        answer = await _send(how, host, prefix + target, protocol, auth)
        assert answer.code(protocol) == "unimplemented", answer
    # Still routed correctly, and the provider never began its shutdown.
    get = request_body(protocol, GET_K, '{"key": "k"}')
    ok = await _send(how, host, prefix + "kv.v1.KVService/Get", protocol, auth, get)
    assert ok.code(protocol) == "ok", ok
    await _still_serving(provider)


@pytest.mark.parametrize("how", ["h2", "h1", "fast"])
async def test_malformed_routed_paths_are_invalid_argument(
    routed: tuple[Host, str, dict[str, str]], how: str
) -> None:
    host, prefix, auth = routed
    provider_id = prefix.split("/")[3]
    get = request_body("connect", json_text='{"key": "k"}')
    for path in (
        prefix + "kv.v1.KVService/Get/",  # an empty segment at the end
        prefix + "kv.v1.KVService/Get/Extra",  # a segment too many
        prefix + "kv.v1.KVService//Get",
        prefix + "kv.v1.KVService/G%65t",  # percent-encoding anywhere
        prefix + "kv.v1.KVService/Get;x",  # not a method name
        prefix + ".",
        f"/services/kv/{provider_id}%2fkv.v1.KVService/Get",
        f"/services/./kv/{provider_id}/kv.v1.KVService/Get",
        f"/services/%6bv/{provider_id}/kv.v1.KVService/Get",
        f"/%73ervices/kv/{provider_id}/kv.v1.KVService/Get",  # the mux decodes, the router not
    ):
        answer = await _send(how, host, path, "connect", auth, get)
        assert answer.code("connect") == "invalid_argument", (path, answer)
        assert answer.message("connect").startswith("invalid routed path"), answer
    # Unknown methods of the registered service (the host knows kv.v1's descriptor).
    answer = await _send(how, host, prefix + "kv.v1.KVService/Shutdown", "connect", auth)
    assert answer.code("connect") == "unimplemented"
    # connect-plugin-go's form: the method alone, after the provider id.
    answer = await _send(how, host, prefix + "Get", "connect", auth, get)
    assert answer.code("connect") == "ok"
    answer = await _send(how, host, prefix + "GetPluginInfo", "connect", auth)
    assert answer.code("connect") == "unimplemented"
