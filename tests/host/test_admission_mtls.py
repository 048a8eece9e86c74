"""Admission by mTLS identity: a host on loopback TLS with a client CA, real certificates."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyqwest
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plugin_di.clock import FakeClock
from plugin_di.host import join_tokens
from plugin_di.host.admission import AdmissionPolicy, AllowEntry
from plugin_di.host.client_cert import ClientCertScope, current_client_cert_name
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from plugin_di.plugin.host_client import HostClient
from plugin_di.rpc.tls import CertKeyPair, generate_ephemeral_cert

KV_PATH = "/kv.v1.KVService/"


@dataclass
class CA:
    """A test certificate authority that signs client certificates."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, name: str) -> CA:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def client(self, common_name: str) -> CertKeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return CertKeyPair(
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


@dataclass
class TLSHost:
    host: Host
    server_cert: bytes
    ca: CA


@pytest.fixture
async def tls_host(tmp_path: Path) -> AsyncIterator[TLSHost]:
    ca = CA.make("plugin-di test client CA")
    server = generate_ephemeral_cert("host")
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    (tmp_path / "c.pem").write_bytes(server.cert_pem)
    (tmp_path / "k.pem").write_bytes(server.key_pem)
    policy = AdmissionPolicy(
        key_file=join_tokens.create_key_file(tmp_path / "admission.key"),
        allow_cert=(AllowEntry("edge", frozenset({"kv"})),),
        client_ca=tmp_path / "ca.pem",
    )
    host = Host(HostConfig(sweep_interval=1e9), clock=FakeClock(), admission=policy)
    await host.start("127.0.0.1:0", certfile=tmp_path / "c.pem", keyfile=tmp_path / "k.pem")
    try:
        yield TLSHost(host, server.cert_pem, ca)
    finally:
        await host.stop()


@pytest.fixture
async def connect() -> AsyncIterator[Any]:
    transports: list[pyqwest.HTTPTransport] = []

    def client(tls: TLSHost, cert: CertKeyPair | None = None) -> HostClient:
        kwargs: dict[str, Any] = {"tls_ca_cert": tls.server_cert}
        if cert is not None:
            kwargs.update(tls_cert=cert.cert_pem, tls_key=cert.key_pem)
        transport = pyqwest.HTTPTransport(**kwargs)
        transports.append(transport)
        return HostClient(tls.host.url, http_client=pyqwest.Client(transport))

    yield client
    for transport in transports:
        await transport.aclose()
    await asyncio.sleep(0.05)


async def test_a_certificate_with_an_entry_admits_its_name(tls_host: TLSHost, connect: Any) -> None:
    client = connect(tls_host, tls_host.ca.client("edge"))
    await client.handshake("edge")
    await client.register("kv", "1.0.0", KV_PATH)
    with pytest.raises(ConnectError) as info:
        await client.register("cache", "1.0.0", KV_PATH)
    assert info.value.code is Code.PERMISSION_DENIED
    # the same certificate cannot take another self_id
    with pytest.raises(ConnectError) as info:
        await connect(tls_host, tls_host.ca.client("edge")).handshake("kv")
    assert info.value.code is Code.PERMISSION_DENIED
    assert info.value.message == "the client certificate is for 'edge', not for self_id 'kv'"


async def test_a_certificate_without_an_entry_is_not_admitted(
    tls_host: TLSHost, connect: Any
) -> None:
    with pytest.raises(ConnectError) as info:
        await connect(tls_host, tls_host.ca.client("stranger")).handshake("stranger")
    assert info.value.code is Code.UNAUTHENTICATED
    assert "its client certificate 'stranger' has no --allow-cert entry" in info.value.message


async def test_without_a_certificate_a_join_token_still_admits(
    tls_host: TLSHost, connect: Any
) -> None:
    with pytest.raises(ConnectError) as info:
        await connect(tls_host).handshake("edge")  # the name alone admits nothing
    assert info.value.code is Code.UNAUTHENTICATED
    token = tls_host.host.admission.issue_join_token("kv", ["kv"], ttl=60)
    client = connect(tls_host)
    await client.handshake("kv", join_token=token)
    await client.register("kv", "1.0.0", KV_PATH)


async def test_a_certificate_from_another_ca_is_refused_by_tls(
    tls_host: TLSHost, connect: Any
) -> None:
    impostor = CA.make("another CA").client("edge")
    with pytest.raises(ConnectError) as info:
        await connect(tls_host, impostor).handshake("edge")
    assert info.value.code is Code.UNAVAILABLE
    assert not tls_host.host.registry.store.plugins()


async def test_a_client_ca_needs_tls(tmp_path: Path) -> None:
    host = Host(clock=FakeClock(), admission=AdmissionPolicy(client_ca=tmp_path / "ca.pem"))
    try:
        with pytest.raises(ValueError, match="needs the host to serve TLS"):
            await host.start("127.0.0.1:0")
    finally:
        await host.stop()


async def test_the_name_is_read_from_the_asgi_scope_tls_extension() -> None:
    ca = CA.make("ca")
    pem = ca.client("edge").cert_pem.decode()
    seen: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(current_client_cert_name())

    wrapped = ClientCertScope(app)
    await wrapped({"type": "http", "extensions": {"tls": {"client_cert_chain": [pem]}}}, None, None)
    await wrapped({"type": "http", "extensions": {"tls": {}}}, None, None)
    await wrapped({"type": "http"}, None, None)
    assert seen == ["edge", None, None]
