"""TLS for plugin channels: certificate files, automatic mTLS with pinned certificates, peer
identity for handlers, and the plaintext warning.

Automatic mTLS (as go-plugin's AutoMTLS): host and plugin each make an ephemeral self-signed
certificate (``generate_ephemeral_cert``), exchange them (environment / handshake line), and
each side trusts only the other's certificate: ``pinned_server_ssl_context`` for the server
(`plugin_di.rpc.serving`), ``pinned_client_tls`` for a pyqwest client.

The exchange, end to end::

    host_pair = generate_ephemeral_cert("plugin-di-host")          # host, per run
    env[PLUGIN_CLIENT_CERT] = host_pair.cert_pem.decode()           # to the plugin
    own = generate_ephemeral_cert(self_id)                          # plugin
    context = pinned_server_ssl_context(own, env[PLUGIN_CLIENT_CERT].encode())
    HandshakeLine(..., cert_der=own.cert_der)                       # back to the host
    tls = pinned_client_tls(host_pair, der_to_pem(line.cert_der))   # host's client
    pyqwest.HTTPTransport(**tls.transport_kwargs(), ...)

The server puts the verified client certificate in the ASGI TLS extension
(``scope["extensions"]["tls"]["client_cert_chain"]``); ``PeerCertMiddleware`` exposes it to
handlers as ``peer_certificate()``.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import logging
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertKeyPair",
    "ClientTLS",
    "InsecureTransportError",
    "PeerCertMiddleware",
    "PeerCertificate",
    "ServerTLS",
    "check_plaintext",
    "der_to_pem",
    "generate_ephemeral_cert",
    "is_loopback_host",
    "load_client_tls",
    "load_server_tls",
    "peer_certificate",
    "pem_to_der",
    "pinned_client_tls",
    "pinned_server_ssl_context",
]

_log = logging.getLogger(__name__)

ALPN = ["h2", "http/1.1"]


# --- certificates --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertKeyPair:
    """A PEM certificate and its PEM (PKCS#8, unencrypted) private key."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, lowercase hex."""
        return _fingerprint(pem_to_der(self.cert_pem))

    @property
    def cert_der(self) -> bytes:
        """The certificate as DER (what the handshake line's CERT field carries)."""
        return pem_to_der(self.cert_pem)


def pem_to_der(cert_pem: bytes) -> bytes:
    """A PEM certificate as DER bytes."""
    return x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)


def der_to_pem(cert_der: bytes) -> bytes:
    """A DER certificate (e.g. from the handshake line) as PEM bytes."""
    return x509.load_der_x509_certificate(cert_der).public_bytes(serialization.Encoding.PEM)


def _fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def generate_ephemeral_cert(
    common_name: str,
    *,
    validity: datetime.timedelta = datetime.timedelta(hours=24),
    hosts: tuple[str, ...] = ("127.0.0.1", "::1", "localhost"),
) -> CertKeyPair:
    """A self-signed ECDSA P-256 certificate for one run, valid for server and client auth.

    It is not a CA (``CA:FALSE``), so pinning it trusts exactly this certificate and nothing it
    could sign. ``hosts`` become IP or DNS subject alternative names.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return CertKeyPair(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _load_cert_chain(context: ssl.SSLContext, own: CertKeyPair) -> None:
    # The ssl module loads keys only from files: write them to a private directory briefly.
    with tempfile.TemporaryDirectory(prefix="plugin-di-tls-") as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        for path, data in ((cert_path, own.cert_pem), (key_path, own.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        context.load_cert_chain(cert_path, key_path)


# --- server and client settings ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """A server's certificate and key, and the CA(s) its clients must chain to (mTLS) if any."""

    cert_pem: bytes
    key_pem: bytes
    client_ca_pem: bytes | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A server context (TLS >= 1.2, ALPN h2 + http/1.1)."""
        context = _server_context()
        _load_cert_chain(context, CertKeyPair(self.cert_pem, self.key_pem))
        if self.client_ca_pem is not None:
            context.load_verify_locations(cadata=self.client_ca_pem.decode("ascii"))
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """What a pyqwest client needs: the CA(s) to trust and, for mTLS, its own cert and key."""

    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None

    def transport_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pyqwest.HTTPTransport`` (``tls_ca_cert``, ``tls_cert``...)."""
        kwargs: dict[str, Any] = {}
        if self.ca_pem is not None:
            kwargs["tls_ca_cert"] = self.ca_pem
        if self.cert_pem is not None and self.key_pem is not None:
            kwargs["tls_cert"] = self.cert_pem
            kwargs["tls_key"] = self.key_pem
        return kwargs


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise FileNotFoundError(
            f"cannot read TLS {what} {os.fspath(path)!r}: {e.strerror}; check the path and "
            f"its permissions"
        ) from None


def load_server_tls(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str],
    client_ca_file: str | os.PathLike[str] | None = None,
) -> ServerTLS:
    """Server TLS settings from PEM files (a client CA file turns on mTLS)."""
    return ServerTLS(
        _read(certfile, "certificate"),
        _read(keyfile, "key"),
        None if client_ca_file is None else _read(client_ca_file, "client CA file"),
    )


def load_client_tls(
    ca_file: str | os.PathLike[str] | None = None,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
) -> ClientTLS:
    """Client TLS settings from PEM files; ``certfile`` and ``keyfile`` go together."""
    if (certfile is None) != (keyfile is None):
        raise ValueError("client TLS needs both certfile and keyfile for mTLS, or neither")
    return ClientTLS(
        None if ca_file is None else _read(ca_file, "CA file"),
        None if certfile is None else _read(certfile, "certificate"),
        None if keyfile is None else _read(keyfile, "key"),
    )


def pinned_server_ssl_context(own: CertKeyPair, peer_cert_pem: bytes) -> ssl.SSLContext:
    """A server context presenting ``own`` and accepting only clients holding ``peer_cert_pem``."""
    return ServerTLS(own.cert_pem, own.key_pem, peer_cert_pem).ssl_context()


def pinned_client_tls(own: CertKeyPair, peer_cert_pem: bytes) -> ClientTLS:
    """Client settings trusting only ``peer_cert_pem`` and presenting ``own``."""
    return ClientTLS(peer_cert_pem, own.cert_pem, own.key_pem)


# --- peer identity -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """The verified TLS peer certificate of the current connection."""

    der: bytes
    name: str
    """common name, else the first DNS name ("" if neither)"""
    fingerprint: str
    """SHA-256 of ``der``, lowercase hex"""
    dns_names: tuple[str, ...]
    organization: str
    serial_number: int
    not_after: datetime.datetime

    @property
    def pem(self) -> str:
        return ssl.DER_cert_to_PEM_cert(self.der)


_PEER: ContextVar[PeerCertificate | None] = ContextVar("plugin_di_tls_peer", default=None)


def _server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(ALPN)
    return context


def _text(attrs: list[x509.NameAttribute[Any]]) -> str:
    value = attrs[0].value if attrs else ""
    return value if isinstance(value, str) else value.decode()


@functools.lru_cache(maxsize=128)
def _parse_peer(der: bytes) -> PeerCertificate:
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = ()
    cn = _text(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    return PeerCertificate(
        der=der,
        name=cn or (dns[0] if dns else ""),
        fingerprint=_fingerprint(der),
        dns_names=dns,
        organization=_text(cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)),
        serial_number=cert.serial_number,
        not_after=cert.not_valid_after_utc,
    )


def peer_certificate() -> PeerCertificate | None:
    """The verified client certificate of the request being handled (under PeerCertMiddleware)."""
    return _PEER.get()


_ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class PeerCertMiddleware:
    """ASGI middleware exposing the TLS client certificate to the app and its handlers."""

    def __init__(self, app: _ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain")
        if not chain:
            await self.app(scope, receive, send)
            return
        token = _PEER.set(_parse_peer(pem_to_der(chain[0].encode("ascii"))))
        try:
            await self.app(scope, receive, send)
        finally:
            _PEER.reset(token)


# --- plaintext -------------------------------------------------------------------------------


class InsecureTransportError(ValueError):
    """Credentials would be sent in plaintext to a non-loopback address."""


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost`` (no DNS lookups: other names count as remote)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_plaintext(
    url: str,
    *,
    sends_credentials: bool,
    allow_insecure: bool = False,
    logger: logging.Logger = _log,
) -> None:
    """Warn about plaintext HTTP to a remote address; refuse it when credentials would be sent.

    ``https://`` and ``unix://`` pass silently, as does ``http://`` to a loopback address.
    ``allow_insecure=True`` turns the refusal into a warning.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or is_loopback_host(parts.hostname or ""):
        return
    if sends_credentials and not allow_insecure:
        raise InsecureTransportError(
            f"refusing to send credentials in plaintext to {parts.netloc}: use an https:// "
            f"endpoint (TLS), a loopback or unix:// address, or allow insecure transport "
            f"explicitly"
        )
    logger.warning(
        "plaintext connection to non-loopback address %s: traffic%s can be read and altered "
        "on the network; configure TLS",
        parts.netloc,
        " including credentials" if sends_credentials else "",
    )
