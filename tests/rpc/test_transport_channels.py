"""http_client per URL scheme (HTTP/1.1 + h2c, h2c, TLS, mTLS, in-process) and the server
behind it."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from plugin_di.rpc.asgi import ServiceMux
from plugin_di.rpc.h1 import H1Transport
from plugin_di.rpc.serving import Listener, bind_socket, serve
from plugin_di.rpc.split import SplitTransport
from plugin_di.rpc.tls import CertKeyPair, ClientTLS, generate_ephemeral_cert, load_server_tls
from plugin_di.rpc.transport import (
    asgi_http_client,
    client_address,
    connect_client,
    http_client,
    unix_socket_path,
)
from tests.support.kv import KV

# What the calls below read: Get answers ``value-of-<key>``; a Watch of ``w`` streams w0..w2.
CHANNEL_DATA = {
    "k": b"value-of-k",
    "block": b"value-of-block",
    **{f"w{i}": b"" for i in range(3)},
}


@asynccontextmanager
async def serving(
    app: Any,
    address: str = "127.0.0.1:0",
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    client_ca: Path | None = None,
) -> AsyncIterator[tuple[str, asyncio.Event, asyncio.Task[None]]]:
    bound = bind_socket(address)
    tls = None
    if certfile is not None and keyfile is not None:
        tls = load_server_tls(certfile, keyfile, client_ca).ssl_context()
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(app, Listener(bound, tls), shutdown=stop, ready=ready.set))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield bound.url, stop, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def mux(kv: KV | None = None) -> ServiceMux:
    return ServiceMux([KVServiceASGIApplication(kv or KV(CHANNEL_DATA))])


async def _roundtrip(client: KVServiceClient) -> None:
    assert (await client.get(pb.GetRequest(key="k"))).value == b"value-of-k"
    assert [e.key async for e in client.watch(pb.WatchRequest(prefix="w"))] == ["w0", "w1", "w2"]


class Versions:
    """An ASGI wrapper remembering the HTTP version of each request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["http_version"])
        await self.app(scope, receive, send)


async def test_default_is_http1_with_grpc_over_h2c() -> None:
    """``http://`` speaks HTTP/1.1 (as Go's net/http does); the gRPC protocol goes over h2c."""
    app = Versions(mux())
    async with serving(app) as (url, _, _), http_client(url) as http:
        assert isinstance(http.transport, SplitTransport)
        for protocol in (ProtocolType.CONNECT, ProtocolType.GRPC_WEB):
            await _roundtrip(connect_client(KVServiceClient, url, http, protocol=protocol))
        assert set(app.seen) == {"1.1"}
        assert http.transport.idle_connections >= 1  # kept alive for the next call
        app.seen.clear()
        await _roundtrip(connect_client(KVServiceClient, url, http, protocol=ProtocolType.GRPC))
        assert set(app.seen) == {"2"}


@pytest.mark.parametrize("how", ["url", "setting"])
async def test_h2c_for_every_request_by_url_or_setting(how: str) -> None:
    app = Versions(mux())
    async with serving(app) as (url, _, _):
        h2c = url.replace("http://", "http+h2c://") if how == "url" else url
        mode = "h2" if how == "setting" else "auto"
        async with http_client(h2c, http_version=mode) as http:
            assert http.address == url
            for protocol in ProtocolType:
                await _roundtrip(connect_client(KVServiceClient, h2c, http, protocol=protocol))
    assert set(app.seen) == {"2"}


async def test_http1_mode_carries_connect_and_grpc_web_but_not_grpc() -> None:
    app = Versions(mux())
    async with serving(app) as (url, _, _), http_client(url, http_version="http1") as http:
        assert isinstance(http.transport, H1Transport)
        for protocol in (ProtocolType.CONNECT, ProtocolType.GRPC_WEB):
            await _roundtrip(connect_client(KVServiceClient, url, http, protocol=protocol))
        grpc = connect_client(KVServiceClient, url, http, protocol=ProtocolType.GRPC)
        with pytest.raises(ConnectError):  # gRPC needs HTTP/2 and trailers
            await grpc.get(pb.GetRequest(key="k"))
    assert set(app.seen) == {"1.1"}


def _write_pair(directory: Path, name: str, pair: CertKeyPair) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    return cert, key


async def test_tls_with_a_pinned_server_certificate(tmp_path: Path) -> None:
    server = generate_ephemeral_cert("plugin")
    cert, key = _write_pair(tmp_path, "server", server)
    async with serving(mux(), certfile=cert, keyfile=key) as (url, _, _):
        https = url.replace("http://", "https://")
        async with http_client(https, tls=ClientTLS(ca_pem=server.cert_pem)) as http:
            for protocol in ProtocolType:  # ALPN picked h2: gRPC works too
                await _roundtrip(connect_client(KVServiceClient, https, http, protocol=protocol))
        other = generate_ephemeral_cert("someone-else")
        async with http_client(https, tls=ClientTLS(ca_pem=other.cert_pem)) as http:
            with pytest.raises(ConnectError) as err:
                await connect_client(KVServiceClient, https, http).get(pb.GetRequest(key="k"))
            assert err.value.code == Code.UNAVAILABLE


async def test_mtls_requires_the_client_certificate(tmp_path: Path) -> None:
    server, client_pair = generate_ephemeral_cert("plugin"), generate_ephemeral_cert("host")
    cert, key = _write_pair(tmp_path, "server", server)
    client_ca, _ = _write_pair(tmp_path, "client", client_pair)
    async with serving(mux(), certfile=cert, keyfile=key, client_ca=client_ca) as (url, _, _):
        https = url.replace("http://", "https://")
        trusted = ClientTLS(server.cert_pem, client_pair.cert_pem, client_pair.key_pem)
        async with http_client(https, tls=trusted) as http:
            await _roundtrip(connect_client(KVServiceClient, https, http))
        async with http_client(https, tls=ClientTLS(ca_pem=server.cert_pem)) as http:
            with pytest.raises(ConnectError) as err:
                await connect_client(KVServiceClient, https, http).get(pb.GetRequest(key="k"))
            assert err.value.code == Code.UNAVAILABLE


async def test_in_process_client_runs_lifespan_and_all_protocols() -> None:
    started: list[str] = []

    async def service() -> AsyncIterator[KV]:
        started.append("up")
        try:
            yield KV(CHANNEL_DATA)
        finally:
            started.append("down")

    async with asgi_http_client(ServiceMux([KVServiceASGIApplication(service())])) as http:
        assert started == ["up"]
        for protocol in ProtocolType:
            await _roundtrip(connect_client(KVServiceClient, http.address, http, protocol=protocol))
    assert started == ["up", "down"]


async def test_graceful_shutdown_lets_the_call_in_flight_finish() -> None:
    kv = KV(CHANNEL_DATA)
    async with serving(mux(kv)) as (url, stop, task), http_client(url) as http:
        client = connect_client(KVServiceClient, url, http)
        call = asyncio.create_task(client.get(pb.GetRequest(key="block")))
        await asyncio.wait_for(kv.blocked.wait(), 5)
        stop.set()
        await asyncio.sleep(0)  # let the server see the trigger while the call is in flight
        assert not task.done()
        kv.release.set()
        assert (await asyncio.wait_for(call, 5)).value == b"value-of-block"
        await asyncio.wait_for(task, 5)


def test_unix_socket_is_private_and_stale_files_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "p.sock"
    first = bind_socket(f"unix:{path}")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert (first.network, first.address, first.url) == ("unix", str(path), f"unix://{path}")
    first.sock.close()  # a dead server leaves its socket file behind
    second = bind_socket(f"unix://{path}")
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    second.close()
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(FileExistsError, match="not a socket"):
        bind_socket(f"unix:{path}")


def test_tcp_bind_reports_the_real_port() -> None:
    bound = bind_socket("127.0.0.1:0")
    try:
        host, port = bound.address.rsplit(":", 1)
        assert host == "127.0.0.1"
        assert int(port) == bound.sock.getsockname()[1] > 0
        assert bound.url == f"http://{bound.address}"
        with pytest.raises(OSError, match="cannot listen on"):
            bind_socket(bound.address)  # already taken
    finally:
        bound.close()
    with pytest.raises(ValueError, match="HOST:PORT"):
        bind_socket("localhost")


def test_url_parsing_and_refusals() -> None:
    assert client_address("unix:///run/p.sock") == "http://localhost"
    assert client_address("http+h1fast://127.0.0.1:5/") == "http://127.0.0.1:5"
    assert client_address("http://127.0.0.1:5/") == "http://127.0.0.1:5"
    assert unix_socket_path("unix:///run/p.sock") == "/run/p.sock"
    assert unix_socket_path("unix:/run/p.sock") == "/run/p.sock"
    with pytest.raises(ValueError, match="absolute path"):
        unix_socket_path("unix:relative.sock")
    with pytest.raises(ValueError, match="unsupported endpoint URL"):
        http_client("ftp://x")
    assert client_address("http+h2c://127.0.0.1:5/") == "http://127.0.0.1:5"
    for cleartext in ("http://127.0.0.1:1", "http+h2c://127.0.0.1:1", "http+h1fast://127.0.0.1:1"):
        with pytest.raises(ValueError, match="https://"):
            http_client(cleartext, tls=ClientTLS())
    with pytest.raises(ValueError, match="'bogus' is not a valid HTTPMode"):
        http_client("http://127.0.0.1:1", http_version="bogus")


async def test_failed_startup_raises_and_releases_the_socket(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[KV]:
        raise RuntimeError("cannot open the database")
        yield KV(CHANNEL_DATA)  # pragma: no cover

    path = tmp_path / "broken.sock"
    bound = bind_socket(f"unix:{path}")
    ready: list[bool] = []
    with pytest.raises(Exception, match="cannot open the database"):
        await asyncio.wait_for(
            serve(
                ServiceMux([KVServiceASGIApplication(broken())]),
                bound,
                shutdown=asyncio.Event(),
                ready=lambda: ready.append(True),
            ),
            10,
        )
    assert ready == []
    assert not path.exists()
    assert bound.sock.fileno() == -1


async def test_ready_fires_for_an_app_without_lifespan() -> None:
    async def plain(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serving(plain) as (url, _, _), http_client(url, http_version="http1") as http:
        assert (await http.get(f"{url}/anything")).status == 204
