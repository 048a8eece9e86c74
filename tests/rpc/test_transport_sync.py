"""SyncH1Transport with generated sync clients, against the server running in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClientSync
from plugin_di.clock import FakeClock
from plugin_di.rpc.asgi import ServiceMux
from plugin_di.rpc.h1sync import SyncH1Transport
from plugin_di.rpc.serving import bind_socket, serve
from plugin_di.rpc.split import SyncSplitTransport
from plugin_di.rpc.transport import PluginSyncHTTPClient, connect_client, sync_http_client
from tests.support.kv import KV


@contextmanager
def serving_in_thread(app: Any, address: str) -> Iterator[str]:
    """The server on its own loop in a thread; the test thread makes blocking calls."""
    bound = bind_socket(address)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve(app, bound, shutdown=stop, ready=ready.set))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield bound.url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "kv.sock")


@pytest.fixture
def kv_sync(sock_path: str) -> Iterator[tuple[KV, KVServiceClientSync, PluginSyncHTTPClient]]:
    kv = KV(missing="not_found")
    with (
        serving_in_thread(ServiceMux([KVServiceASGIApplication(kv)]), f"unix:{sock_path}") as url,
        sync_http_client(url) as http,
    ):
        yield kv, connect_client(KVServiceClientSync, url, http), http


def test_sync_unary_stream_and_errors_over_unix_socket(
    kv_sync: tuple[KV, KVServiceClientSync, PluginSyncHTTPClient],
) -> None:
    _, client, http = kv_sync
    client.put(pb.PutRequest(key="a", value=b"1"))
    assert client.get(pb.GetRequest(key="a")).value == b"1"
    for protocol in (ProtocolType.CONNECT, ProtocolType.GRPC_WEB):
        c = connect_client(KVServiceClientSync, "unix:///x", http, protocol=protocol)
        events = list(c.watch(pb.WatchRequest(prefix="count:1000")))
        assert len(events) == 1000
        assert events[-1].key == "k999"
        with pytest.raises(ConnectError) as err:
            c.get(pb.GetRequest(key="nope"))
        assert (err.value.code, err.value.message) == (Code.NOT_FOUND, "no key 'nope'")
    assert isinstance(http.transport, SyncH1Transport)
    assert http.transport.idle_connections == 1


class ServerWaits:
    """Sends the server a 10 s deadline, whatever the call's own deadline is."""

    def intercept_unary_sync(self, call_next: Any, request: Any, ctx: Any) -> Any:
        ctx.request_headers["connect-timeout-ms"] = "10000"
        return call_next(request, ctx)


def test_sync_deadline_drops_the_connection(
    kv_sync: tuple[KV, KVServiceClientSync, PluginSyncHTTPClient],
) -> None:
    kv, client, http = kv_sync
    kv.data["block"] = b"b"
    # The server is told a long deadline: only the client's 50 ms can fire (otherwise the
    # server may answer DEADLINE_EXCEEDED first, and that answer keeps the connection).
    patient = connect_client(KVServiceClientSync, "unix:///x", http, interceptors=[ServerWaits()])
    with pytest.raises(ConnectError) as err:
        patient.get(pb.GetRequest(key="block"), timeout_ms=50)
    assert err.value.code == Code.DEADLINE_EXCEEDED
    assert isinstance(http.transport, SyncH1Transport)
    assert http.transport.idle_connections == 0
    kv.release.set()
    assert client.get(pb.GetRequest(key="block")).value == b"b"


def test_sync_abandoned_stream_drops_its_connection(
    kv_sync: tuple[KV, KVServiceClientSync, PluginSyncHTTPClient],
) -> None:
    _, client, http = kv_sync
    stream = client.watch(pb.WatchRequest(prefix="count:1000"))
    assert next(stream).key == "k0"
    stream.close()  # type: ignore[attr-defined]
    assert isinstance(http.transport, SyncH1Transport)
    assert http.transport.idle_connections == 0
    assert [e.key for e in client.watch(pb.WatchRequest(prefix="count:2"))] == ["k0", "k1"]


def test_sync_call_after_server_restart_and_oversized_body(sock_path: str) -> None:
    kv = KV(missing="not_found")
    kv.data["k"] = b"v"
    app = ServiceMux([KVServiceASGIApplication(kv)], max_message_bytes=64 * 1024)
    with sync_http_client(f"unix://{sock_path}") as http:
        client = connect_client(KVServiceClientSync, "unix:///x", http)
        with serving_in_thread(app, f"unix:{sock_path}"):
            assert client.get(pb.GetRequest(key="k")).found
            with pytest.raises(ConnectError) as big:
                client.put(pb.PutRequest(key="big", value=b"x" * (2 * 1024 * 1024)))
            assert big.value.code == Code.RESOURCE_EXHAUSTED
            assert client.get(pb.GetRequest(key="k")).found
        with pytest.raises(ConnectError) as down:
            client.get(pb.GetRequest(key="k"))
        assert down.value.code == Code.UNAVAILABLE
        with serving_in_thread(app, f"unix:{sock_path}"):
            assert client.get(pb.GetRequest(key="k")).found


def test_sync_tcp_fast_path() -> None:
    kv = KV(missing="not_found")
    kv.data["t"] = b"tcp"
    with serving_in_thread(ServiceMux([KVServiceASGIApplication(kv)]), "127.0.0.1:0") as url:
        with sync_http_client(url, http_version="h1fast") as http:
            assert isinstance(http.transport, SyncH1Transport)
            assert connect_client(KVServiceClientSync, url, http).get(pb.GetRequest(key="t")).found
        with sync_http_client(url) as http:  # the default: HTTP/1.1, gRPC over h2c
            assert isinstance(http.transport, SyncSplitTransport)
            for protocol in ProtocolType:
                client = connect_client(KVServiceClientSync, url, http, protocol=protocol)
                assert client.get(pb.GetRequest(key="t")).value == b"tcp"
            assert http.transport.idle_connections == 1
        with sync_http_client(url.replace("http://", "http+h2c://")) as http:
            client = connect_client(KVServiceClientSync, url, http, protocol=ProtocolType.GRPC)
            assert client.get(pb.GetRequest(key="t")).value == b"tcp"


@contextmanager
def raw_unix_server(path: str, answers_per_connection: int) -> Iterator[list[int]]:
    """Answers N requests per connection, then reads the next one and closes unanswered."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    listener.settimeout(0.05)
    connections: list[int] = []
    done = threading.Event()

    def serve() -> None:
        for _ in range(200):  # bounded: about 10 s of idle polling at most
            if done.is_set():
                return
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections.append(1)
            with conn, conn.makefile("rb") as rfile:
                for _ in range(answers_per_connection):
                    if not _read_request(rfile):
                        break
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                _read_request(rfile)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield connections
    finally:
        done.set()
        listener.close()
        thread.join(5)


def _read_request(rfile: Any) -> bool:
    length = 0
    for _ in range(100):
        line = rfile.readline()
        if not line:
            return False
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        if line == b"\r\n":
            rfile.read(length)
            return True
    return False


def test_sync_stale_pooled_connection_is_retried_once(sock_path: str) -> None:
    from pyqwest import SyncClient

    with raw_unix_server(sock_path, answers_per_connection=1) as connections:
        transport = SyncH1Transport(unix_path=sock_path, clock=FakeClock())
        http = SyncClient(transport)
        for _ in range(3):
            assert http.post("http://localhost/x", content=b"x").content == b"ok"
        assert len(connections) == 3
        transport.close()


def test_sync_pooled_connection_is_reused_with_a_read_timeout(sock_path: str) -> None:
    """The liveness peek of a pooled connection does not wait out the read timeout."""
    from pyqwest import SyncClient

    with raw_unix_server(sock_path, answers_per_connection=3) as connections:
        transport = SyncH1Transport(unix_path=sock_path, read_timeout=5.0)
        http = SyncClient(transport)
        for _ in range(3):
            assert http.post("http://localhost/x", content=b"x").content == b"ok"
        assert len(connections) == 1
        transport.close()


def test_sync_request_head_leaves_out_the_default_identity_codings(sock_path: str) -> None:
    from pyqwest import SyncClient

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(1)
    listener.settimeout(10)
    heads: list[bytes] = []

    def serve_one() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as rfile:
            head = b""
            for _ in range(100):  # bounded: a request head has a handful of lines
                line = rfile.readline()
                head += line
                if line in (b"\r\n", b""):
                    break
            heads.append(head)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    transport = SyncH1Transport(unix_path=sock_path)
    try:
        headers = {"content-encoding": "identity", "accept-encoding": "gzip", "x-a": "identity"}
        response = SyncClient(transport).get("http://localhost/x", headers=headers)
        assert response.content == b"ok"
    finally:
        transport.close()
        thread.join(5)
        listener.close()
    assert b"content-encoding" not in heads[0]
    assert b"accept-encoding: gzip\r\n" in heads[0]
    assert b"x-a: identity\r\n" in heads[0]
