"""TLS: ephemeral certificates, pinned mTLS over a real hypercorn server, peer identity,
the plaintext rules."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyqwest
import pytest
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from connectrpc.request import RequestContext
from cryptography import x509
from pyqwest.testing import ASGITransport

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVService, KVServiceASGIApplication, KVServiceClient
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.rpc.interceptors.auth import (
    MTLSAuthenticator,
    ServerAuth,
    current_identity,
)
from plugin_di.rpc.serving import Listener, bind_socket, serve
from plugin_di.rpc.tls import (
    ClientTLS,
    InsecureTransportError,
    PeerCertMiddleware,
    check_plaintext,
    der_to_pem,
    generate_ephemeral_cert,
    is_loopback_host,
    load_client_tls,
    load_server_tls,
    peer_certificate,
    pem_to_der,
    pinned_client_tls,
    pinned_server_ssl_context,
)

HOST = generate_ephemeral_cert("plugin-di-host")
PLUGIN = generate_ephemeral_cert("kv-plugin")
STRANGER = generate_ephemeral_cert("plugin-di-host")  # same name, different key


class WhoAmI(KVService):
    """KV whose Get answers with the caller's certificate name and identity (nothing else is
    implemented)."""

    async def get(
        self, request: kv_pb2.GetRequest, ctx: RequestContext[Any, Any]
    ) -> kv_pb2.GetResponse:
        peer = peer_certificate()
        ident = current_identity()
        text = f"{peer.name if peer else '-'}|{ident.identity if ident else '-'}"
        if ident is not None:
            text += "|" + ",".join(f"{k}={v}" for k, v in sorted(ident.claims.items()))
        return kv_pb2.GetResponse(value=text.encode(), found=True)


@contextlib.asynccontextmanager
async def tls_server(app: Any, context: ssl.SSLContext) -> AsyncIterator[int]:
    bound = bind_socket("127.0.0.1:0")
    port = int(bound.address.rsplit(":", 1)[1])
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(app, Listener(bound, context), shutdown=stop, ready=ready.set))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def kv_client(
    port: int, tls: ClientTLS, protocol: ProtocolType = ProtocolType.CONNECT
) -> AsyncIterator[KVServiceClient]:
    http = pyqwest.Client(pyqwest.HTTPTransport(**tls.transport_kwargs(), connect_timeout=5.0))
    client = KVServiceClient(
        f"https://127.0.0.1:{port}",
        http_client=http,
        protocol=protocol,
        send_compression=None,
        accept_compression=[],
        timeout_ms=5000,
    )
    try:
        yield client
    finally:
        await client.close()
        await asyncio.sleep(0.05)  # lets pyqwest finish closing (see connect-python notes)


def app_with_mtls_auth() -> Any:
    auth = ServerAuth(MTLSAuthenticator(allowed_fingerprints=[HOST.fingerprint]))
    return PeerCertMiddleware(KVServiceASGIApplication(WhoAmI(), interceptors=[auth]))


@pytest.mark.parametrize(
    "protocol",
    [ProtocolType.CONNECT, ProtocolType.GRPC, ProtocolType.GRPC_WEB],
    ids=lambda p: p.name,
)
async def test_pinned_mtls_accepts_the_pinned_peer_and_exposes_its_identity(
    protocol: ProtocolType,
) -> None:
    context = pinned_server_ssl_context(PLUGIN, HOST.cert_pem)
    async with (
        tls_server(app_with_mtls_auth(), context) as port,
        kv_client(port, pinned_client_tls(HOST, PLUGIN.cert_pem), protocol) as client,
    ):
        for _ in range(2):  # the second call reuses the connection
            resp = await client.get(kv_pb2.GetRequest(key="k"))
            name, identity, claims = resp.value.decode().split("|")
            assert (name, identity) == ("plugin-di-host", "plugin-di-host")
            assert f"fingerprint={HOST.fingerprint}" in claims
            assert "dns_names=localhost" in claims


async def test_pinned_mtls_refuses_other_clients() -> None:
    context = pinned_server_ssl_context(PLUGIN, HOST.cert_pem)
    async with tls_server(app_with_mtls_auth(), context) as port:
        # Another self-signed certificate with the same name: the TLS handshake fails.
        async with kv_client(port, pinned_client_tls(STRANGER, PLUGIN.cert_pem)) as client:
            with pytest.raises(ConnectError) as info:
                await client.get(kv_pb2.GetRequest(key="k"))
            assert info.value.code.name == "UNAVAILABLE"
        # No client certificate at all.
        async with kv_client(port, ClientTLS(ca_pem=PLUGIN.cert_pem)) as client:
            with pytest.raises(ConnectError) as info:
                await client.get(kv_pb2.GetRequest(key="k"))
            assert info.value.code.name == "UNAVAILABLE"
        # A client that does not pin the plugin's certificate refuses the server.
        async with kv_client(port, pinned_client_tls(HOST, STRANGER.cert_pem)) as client:
            with pytest.raises(ConnectError) as info:
                await client.get(kv_pb2.GetRequest(key="k"))
            assert info.value.code.name == "UNAVAILABLE"


@pytest.mark.parametrize(
    ("authenticator", "accepted"),
    [
        (MTLSAuthenticator(allowed_fingerprints=[STRANGER.fingerprint]), False),
        (MTLSAuthenticator(allowed_fingerprints=[HOST.fingerprint.upper()]), True),
        (MTLSAuthenticator(allowed_names=["someone-else"]), False),
        (MTLSAuthenticator(allowed_names=["plugin-di-host"]), True),
    ],
)
async def test_mtls_authenticator_allow_lists(
    authenticator: MTLSAuthenticator, accepted: bool
) -> None:
    # TLS trusts the host's certificate; the authenticator decides on its identity.
    app = PeerCertMiddleware(
        KVServiceASGIApplication(WhoAmI(), interceptors=[ServerAuth(authenticator)])
    )
    async with (
        tls_server(app, pinned_server_ssl_context(PLUGIN, HOST.cert_pem)) as port,
        kv_client(port, pinned_client_tls(HOST, PLUGIN.cert_pem)) as client,
    ):
        if accepted:
            assert (await client.get(kv_pb2.GetRequest(key="k"))).found
            return
        with pytest.raises(ConnectError) as info:
            await client.get(kv_pb2.GetRequest(key="k"))
        assert info.value.code.name == "UNAUTHENTICATED"
        assert info.value.message == "client certificate is not trusted"


async def test_mtls_authenticator_without_tls_refuses() -> None:
    # Plain HTTP in process: no peer certificate at all.
    app = PeerCertMiddleware(
        KVServiceASGIApplication(WhoAmI(), interceptors=[ServerAuth(MTLSAuthenticator())])
    )
    async with ASGITransport(app) as transport:
        client = KVServiceClient(
            "http://localhost", http_client=pyqwest.Client(transport), send_compression=None
        )
        with pytest.raises(ConnectError) as info:
            await client.get(kv_pb2.GetRequest(key="k"))
        assert info.value.code.name == "UNAUTHENTICATED"
        assert info.value.message == "client certificate required"


async def test_server_tls_from_files_without_client_auth(tmp_path: Path) -> None:
    (tmp_path / "s.crt").write_bytes(PLUGIN.cert_pem)
    (tmp_path / "s.key").write_bytes(PLUGIN.key_pem)
    server = load_server_tls(tmp_path / "s.crt", tmp_path / "s.key")
    assert server.client_ca_pem is None
    client_tls = load_client_tls(ca_file=tmp_path / "s.crt")
    app = PeerCertMiddleware(KVServiceASGIApplication(WhoAmI()))
    async with (
        tls_server(app, server.ssl_context()) as port,
        kv_client(port, client_tls) as client,
    ):
        resp = await client.get(kv_pb2.GetRequest(key="k"))
        assert resp.value == b"-|-"  # no client certificate, no identity


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cannot read TLS certificate .*missing\.crt"):
        load_server_tls(tmp_path / "missing.crt", tmp_path / "k")
    with pytest.raises(ValueError, match="both certfile and keyfile"):
        load_client_tls(certfile=tmp_path / "c")


def test_der_pem_round_trip_through_the_handshake_line() -> None:
    line = HandshakeLine(1, 1, "tcp", "127.0.0.1:4000", "connect", PLUGIN.cert_der)
    parsed = HandshakeLine.parse(line.format())
    assert der_to_pem(parsed.cert_der) == PLUGIN.cert_pem
    assert pem_to_der(PLUGIN.cert_pem) == PLUGIN.cert_der


def test_ephemeral_cert_shape() -> None:
    cert = x509.load_pem_x509_certificate(PLUGIN.cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= datetime.timedelta(hours=25)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert PLUGIN.fingerprint != STRANGER.fingerprint
    assert len(PLUGIN.fingerprint) == 64
    assert b"PRIVATE KEY" in PLUGIN.key_pem


# --- plaintext rules (addresses only; nothing connects) -----------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("10.0.0.5", False),
        ("192.0.2.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_plaintext_rules(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="plugin_di.rpc.tls")
    for quiet in ("http://127.0.0.1:8080", "https://192.0.2.1", "unix:///tmp/p.sock"):
        check_plaintext(quiet, sends_credentials=True)
    assert caplog.records == []

    check_plaintext("http://192.0.2.1:9000", sends_credentials=False)
    assert len(caplog.records) == 1
    assert "192.0.2.1:9000" in caplog.records[0].getMessage()

    with pytest.raises(InsecureTransportError, match=r"plaintext to 192\.0\.2\.1:9000"):
        check_plaintext("http://192.0.2.1:9000", sends_credentials=True)
    check_plaintext("http://192.0.2.1:9000", sends_credentials=True, allow_insecure=True)
    assert len(caplog.records) == 2
    assert "including credentials" in caplog.records[1].getMessage()
