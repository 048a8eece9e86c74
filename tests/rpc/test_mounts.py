"""The transport contract: every scheme of the mounts table gets a transport that passes the
same round trip (async and blocking), against the example KV service served for real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from connectrpc.protocol import ProtocolType

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import (
    KVServiceASGIApplication,
    KVServiceClient,
    KVServiceClientSync,
)
from examples.kv.store import KVStore
from plugin_di.rpc.asgi import ServiceMux
from plugin_di.rpc.mounts import MOUNTS, mount_for
from plugin_di.rpc.serving import Listener, bind_socket, serve
from plugin_di.rpc.tls import CertKeyPair, ClientTLS, generate_ephemeral_cert, load_server_tls
from plugin_di.rpc.transport import connect_client, http_client, sync_http_client

# scheme -> (served over TLS, on a Unix socket, the protocols it carries)
SCHEMES: dict[str, tuple[bool, bool, tuple[ProtocolType, ...]]] = {
    "http://": (False, False, tuple(ProtocolType)),
    "http+h1fast://": (False, False, tuple(ProtocolType)),
    "http+h2c://": (False, False, tuple(ProtocolType)),
    "https://": (True, False, tuple(ProtocolType)),
    "unix:": (False, True, (ProtocolType.CONNECT, ProtocolType.GRPC_WEB)),
}


def test_every_mounted_scheme_is_tested_here() -> None:
    assert set(SCHEMES) == set(MOUNTS)
    with pytest.raises(ValueError, match="unsupported endpoint URL"):
        mount_for("ftp://127.0.0.1:1")


@asynccontextmanager
async def served(scheme: str, tmp_path: Path) -> AsyncIterator[tuple[str, CertKeyPair | None]]:
    """The KV store served on 127.0.0.1:0 (or a Unix socket), its URL in ``scheme``."""
    tls, unix, _ = SCHEMES[scheme]
    bound = bind_socket(f"unix:{tmp_path / 'kv.sock'}" if unix else "127.0.0.1:0")
    pair = generate_ephemeral_cert("plugin") if tls else None
    context = None
    if pair is not None:
        cert, key = tmp_path / "server.crt", tmp_path / "server.key"
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        context = load_server_tls(cert, key).ssl_context()
    stop, ready = asyncio.Event(), asyncio.Event()
    app = ServiceMux([KVServiceASGIApplication(KVStore())])
    task = asyncio.create_task(serve(app, Listener(bound, context), shutdown=stop, ready=ready.set))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield (bound.url if unix else bound.url.replace("http://", scheme)), pair
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def _client_tls(pair: CertKeyPair | None) -> ClientTLS | None:
    return None if pair is None else ClientTLS(ca_pem=pair.cert_pem)


@pytest.mark.parametrize("scheme", list(SCHEMES))
async def test_each_scheme_round_trips_async(scheme: str, tmp_path: Path) -> None:
    async with (
        served(scheme, tmp_path) as (url, pair),
        http_client(url, tls=_client_tls(pair)) as http,
    ):
        # The fast path exactly where non-gRPC requests go over HTTP/1.1 on cleartext.
        assert (http.buffered is not None) == MOUNTS[scheme].http1_cleartext
        for i, protocol in enumerate(SCHEMES[scheme][2]):
            kv = connect_client(KVServiceClient, url, http, protocol=protocol)
            key = f"{protocol.name}-{i}"
            await kv.put(pb.PutRequest(key=key, value=scheme.encode()))
            got = await kv.get(pb.GetRequest(key=key))
            assert (got.found, got.value) == (True, scheme.encode())
            assert key in (await kv.list(pb.ListRequest())).keys


@pytest.mark.parametrize("scheme", list(SCHEMES))
async def test_each_scheme_round_trips_blocking(scheme: str, tmp_path: Path) -> None:
    async with served(scheme, tmp_path) as (url, pair):

        def calls() -> list[bytes]:
            values = []
            with sync_http_client(url, tls=_client_tls(pair)) as http:
                for protocol in SCHEMES[scheme][2]:
                    kv = connect_client(KVServiceClientSync, url, http, protocol=protocol)
                    kv.put(pb.PutRequest(key=protocol.name, value=scheme.encode()))
                    values.append(kv.get(pb.GetRequest(key=protocol.name)).value)
            return values

        values = await asyncio.wait_for(asyncio.to_thread(calls), 30)
        assert values == [scheme.encode()] * len(SCHEMES[scheme][2])
