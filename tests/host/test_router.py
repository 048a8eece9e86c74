"""The router over Connect, gRPC and gRPC-Web (real servers on both legs; to providers at
http:// URLs the router speaks HTTP/1.1, and HTTP/2 for gRPC)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from connectrpc.client import ResponseMetadata
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin as make_kv_plugin
from plugin_di.gen.capability.logger.v1 import logger_pb2
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.host.admission import AdmissionPolicy
from plugin_di.host.config import HostConfig
from plugin_di.host.router import Upstream
from plugin_di.host.server import Host
from plugin_di.host.tracker import DEGRADED, UNHEALTHY
from plugin_di.plugin.host_client import HostClient
from plugin_di.rpc.split import SplitTransport
from tests.support.host import (
    ADMISSION,
    NO_GZIP,
    RecordingLogger,
    h2_client,
    join_host,
    logger_plugin,
    served,
)


@pytest.mark.parametrize(
    "protocol", [ProtocolType.CONNECT, ProtocolType.GRPC, ProtocolType.GRPC_WEB]
)
async def test_routed_unary_and_server_stream(host: Host, protocol: ProtocolType) -> None:
    kv = make_kv_plugin()
    async with served(kv) as (_, url), h2_client() as http:
        provider = HostClient(host.url, http_client=http)
        await provider.handshake("kv", plugins=[kv])
        await provider.register("kv", "1.0.0", "/kv.v1.KVService/", {"base_url": url})
        caller = HostClient(host.url, http_client=http)
        await caller.handshake("app")
        found = await caller.discover("kv")
        assert found.endpoint.endpoint_url.startswith("/services/kv/kv-")
        client = KVServiceClient(
            host.url + found.endpoint.endpoint_url,
            http_client=http,
            protocol=protocol,
            interceptors=[caller.auth],
            **NO_GZIP,
        )
        stream = client.watch(kv_pb2.WatchRequest(prefix="k"), timeout_ms=5000)
        first = await anext(stream)
        assert first.key == "_watch_started"
        await client.put(kv_pb2.PutRequest(key="k1", value=b"v1"), timeout_ms=2000)
        event = await anext(stream)
        assert (event.key, event.value) == ("k1", b"v1")
        got = await client.get(kv_pb2.GetRequest(key="k1"))
        assert got.found
        assert got.value == b"v1"
        with pytest.raises(ConnectError) as info:
            await client.put(kv_pb2.PutRequest(key="", value=b"x"))
        assert info.value.code is Code.INVALID_ARGUMENT  # the provider's error, carried back
        await stream.aclose()


async def test_http_providers_are_reached_over_http1_and_grpc_over_h2c(host: Host) -> None:
    """A provider at an ``http://`` URL (as connect-plugin-go registers) is reached over
    HTTP/1.1 keep-alive; only gRPC requests open HTTP/2 to it."""
    kv = make_kv_plugin()
    async with served(kv) as (_, url):
        provider = await join_host(host.url, kv, "kv", url)
        caller = HostClient(host.url)
        try:
            await caller.handshake("app")
            found = await caller.discover("kv")
            upstream = host.router.client(Upstream(url=url)).transport
            assert isinstance(upstream, SplitTransport)
            base = caller.address + found.endpoint.endpoint_url
            for protocol in (ProtocolType.CONNECT, ProtocolType.GRPC_WEB):
                client = KVServiceClient(
                    base,
                    http_client=caller.http_client,
                    protocol=protocol,
                    interceptors=[caller.auth],
                    **NO_GZIP,
                )
                await client.put(kv_pb2.PutRequest(key=protocol.name, value=b"1"))
                assert (await client.get(kv_pb2.GetRequest(key=protocol.name))).found
            assert upstream.h1.idle_connections >= 1  # kept alive between calls
            assert not upstream.h2_started
            grpc = KVServiceClient(
                base,
                http_client=caller.http_client,
                protocol=ProtocolType.GRPC,
                interceptors=[caller.auth],
                **NO_GZIP,
            )
            assert (await grpc.get(kv_pb2.GetRequest(key="CONNECT"))).found
            assert upstream.h2_started
        finally:
            await caller.close()
            await provider.close()


async def _raw(
    http: Any, url: str, headers: dict[str, str], body: bytes = b"{}"
) -> tuple[int, Any]:
    response = await http.post(url, {"content-type": "application/json", **headers}, body)
    return response.status, json.loads(response.content or b"{}")


async def test_router_errors_and_header_stripping(host: Host) -> None:
    logger = RecordingLogger()
    async with served(logger_plugin(logger)) as (_, url), h2_client() as http:
        provider = HostClient(host.url, http_client=http)
        await provider.handshake("logger", plugins=[logger_plugin()])
        await provider.register(
            "logger", "1.0.0", "/capability.logger.v1.Logger/", {"base_url": url}
        )
        assert provider.identity is not None
        pid = provider.identity.runtime_id
        caller = await HostClient(host.url, http_client=http).handshake("app")
        auth = {
            "authorization": f"Bearer {caller.runtime_token}",
            "x-plugin-runtime-id": caller.runtime_id,
        }
        route = f"{host.url}/services/logger/{pid}/capability.logger.v1.Logger/Log"
        body = json.dumps({"level": "info", "message": "hello"}).encode()

        status, _ = await _raw(http, route, {**auth, "x-custom": "kept"}, body)
        assert status == 200
        assert logger.lines == ["[info] hello"]
        seen = logger.headers[-1]
        assert seen["x-custom"] == "kept"
        assert "authorization" not in seen
        assert "x-plugin-runtime-id" not in seen
        bare = f"{host.url}/services/logger/{pid}/Log"  # connect-plugin-go style method path
        assert (await _raw(http, bare, auth, body))[0] == 200

        assert (await _raw(http, route, {"authorization": auth["authorization"]}))[0] == 401
        bad = {**auth, "authorization": "Bearer " + "A" * 43 + "="}
        status, payload = await _raw(http, route, bad)
        assert (status, payload["code"]) == (401, "unauthenticated")
        ghost = f"{host.url}/services/logger/ghost-00000000/capability.logger.v1.Logger/Log"
        assert (await _raw(http, ghost, auth))[0] == 404
        wrong_type = f"{host.url}/services/kv/{pid}/capability.logger.v1.Logger/Log"
        assert (await _raw(http, wrong_type, auth))[0] == 404
        status, payload = await _raw(http, f"{host.url}/services/logger/{pid}", auth)
        assert (status, payload["code"]) == (400, "invalid_argument")  # malformed path
        other = f"{host.url}/services/logger/{pid}/kv.v1.KVService/Get"  # not its service
        status, payload = await _raw(http, other, auth, body)
        assert (status, payload["code"]) == (404, "unimplemented")
        unknown = f"{host.url}/services/logger/{pid}/capability.logger.v1.Logger/Nope"
        status, payload = await _raw(http, unknown, auth, body)
        assert (status, payload["code"]) == (404, "unimplemented")
        assert len(logger.lines) == 2  # neither reached the provider

        host.tracker.report(pid, DEGRADED, "slow")
        assert (await _raw(http, route, auth, body))[0] == 200
        host.tracker.report(pid, UNHEALTHY, "broken")
        status, payload = await _raw(http, route, auth, body)
        assert (status, payload["code"]) == (503, "unavailable")

        # the same refusal in the gRPC protocol: trailers-only with grpc-status 14
        client = LoggerClient(
            route.rsplit("/capability", 1)[0],
            http_client=http,
            protocol=ProtocolType.GRPC,
            interceptors=[provider.auth],
            **NO_GZIP,
        )
        with pytest.raises(ConnectError) as info:
            await client.log(logger_pb2.LogRequest(message="x"))
        assert info.value.code is Code.UNAVAILABLE


async def test_deadline_travels_with_the_call(host: Host) -> None:
    logger = RecordingLogger(gate=asyncio.Event())
    async with served(logger_plugin(logger)) as (_, url), h2_client() as http:
        provider = HostClient(host.url, http_client=http)
        await provider.handshake("logger", plugins=[logger_plugin()])
        await provider.register(
            "logger", "1.0.0", "/capability.logger.v1.Logger/", {"base_url": url}
        )
        found = await provider.discover("logger")
        client = provider.routed_client(LoggerClient, found.endpoint)
        with ResponseMetadata() as meta:
            logger.gate.set()
            await client.log(logger_pb2.LogRequest(message="m"), timeout_ms=1500)
        assert meta.headers.get("x-served-by") == "logger"
        assert logger.headers[-1]["connect-timeout-ms"] == "1500"
        logger.gate.clear()
        with pytest.raises(ConnectError) as info:
            await client.log(logger_pb2.LogRequest(message="late"), timeout_ms=200)
        assert info.value.code is Code.DEADLINE_EXCEEDED
        logger.gate.set()


async def test_routed_calls_are_rate_limited_per_caller() -> None:
    from plugin_di.clock import FakeClock
    from plugin_di.rpc.interceptors.ratelimit import Rate

    host = Host(
        HostConfig(rate_limit=Rate(0, 2), sweep_interval=1e9),
        clock=FakeClock(),
        admission=ADMISSION,
    )
    await host.start()
    try:
        async with served(logger_plugin()) as (_, url), h2_client() as http:
            provider = HostClient(host.url, http_client=http)
            await provider.handshake("logger", plugins=[logger_plugin()])
            await provider.register(
                "logger", "1.0.0", "/capability.logger.v1.Logger/", {"base_url": url}
            )
            found = await provider.discover("logger")
            client = provider.routed_client(LoggerClient, found.endpoint)
            for _ in range(2):
                await client.log(logger_pb2.LogRequest(level="info", message="ok"))
            with pytest.raises(ConnectError) as info:
                await client.log(logger_pb2.LogRequest(level="info", message="too many"))
            assert info.value.code is Code.RESOURCE_EXHAUSTED
    finally:
        await host.stop()


async def test_a_removed_providers_client_is_closed(host: Host) -> None:
    """One client per provider URL; when no provider uses a URL any more, it is closed."""
    router = host.router
    upstream = Upstream(url="http://127.0.0.1:9")
    router.set_upstream("a-1", upstream)
    router.set_upstream("b-1", upstream)
    first = router.client(upstream)
    assert router.client(Upstream(url=upstream.url)) is first  # one cache, by URL
    router.remove("a-1")
    assert router.client(upstream) is first  # b-1 still uses it
    router.remove("b-1")
    replacement = router.client(upstream)
    assert replacement is not first
    await router.aclose()  # also waits for the closing of the first
    assert first.buffered is not None
    with pytest.raises(ConnectionError, match="closed"):
        await first.buffered.fetch("GET", upstream.url + "/x")


async def test_an_in_process_provider_gets_the_path_and_the_query_apart() -> None:
    """An ASGI provider sees ``/{Service}/{Method}`` as its path and the query on its own."""
    from plugin_di.clock import FakeClock

    seen: list[tuple[str, bytes, bytes]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["path"], scope["raw_path"], scope["query_string"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    host = Host(
        HostConfig(sweep_interval=1e9),
        clock=FakeClock(),
        admission=AdmissionPolicy(open_registration=True),
    )
    provider = host.tokens.issue("rec")
    caller = host.tokens.issue("app")
    host.registry.register(provider.runtime_id, "rec", "1.0.0", "/capability.logger.v1.Logger/")
    host.router.set_upstream(provider.runtime_id, Upstream(app=app))
    http = host.in_memory_client()
    route = f"{host.url}/services/rec/{provider.runtime_id}/capability.logger.v1.Logger/Log"
    auth = {
        "authorization": f"Bearer {caller.token}",
        "x-plugin-runtime-id": caller.runtime_id,
        "content-type": "application/json",
    }
    response = await http.get(route + "?connect=v1&encoding=json&message=%7B%7D", auth)
    assert response.status == 200
    path = "/capability.logger.v1.Logger/Log"
    assert seen == [(path, path.encode(), b"connect=v1&encoding=json&message=%7B%7D")]
