"""The TLS client certificate of a host request, for admission by mTLS identity.

A host served with TLS and a client CA asks every client for a certificate (optionally:
plugins admitted by a join token need none) and the TLS layer refuses one the CA did not
sign. The server puts the verified chain in ``scope["extensions"]["tls"]["client_cert_chain"]``;
`ClientCertScope` keeps the first one for the request, where the handshake handler reads its
name.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

_Scope = MutableMapping[str, Any]
_ASGIApp = Callable[[_Scope, Any, Any], Awaitable[None]]
_CERT: ContextVar[str | None] = ContextVar("plugin_di_host_client_cert", default=None)


def client_cert_pem(scope: _Scope) -> str | None:
    """The verified client certificate (PEM) the server put in an ASGI ``scope``, or None."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or ()
    first = next(iter(chain), None)
    return first if isinstance(first, str) and first else None


class ClientCertScope:
    """ASGI middleware: the request's client certificate, for `current_client_cert_name`."""

    def __init__(self, app: _ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: _Scope, receive: Any, send: Any) -> None:
        pem = client_cert_pem(scope) if scope["type"] == "http" else None
        if pem is None:
            await self.app(scope, receive, send)
            return
        token = _CERT.set(pem)
        try:
            await self.app(scope, receive, send)
        finally:
            _CERT.reset(token)


def current_client_cert_name() -> str | None:
    """The common name (else first DNS name) of the current request's client certificate."""
    pem = _CERT.get()
    return None if pem is None else certificate_name(pem)


@functools.lru_cache(maxsize=128)
def certificate_name(pem: str) -> str:
    """A PEM certificate's common name, else its first DNS name ("" when it has neither)."""
    from cryptography import x509  # loaded only when a host admits by certificate
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value if isinstance(value, str) else value.decode()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    dns = san.get_values_for_type(x509.DNSName)
    return dns[0] if dns else ""


def client_ca_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str],
    client_ca: str | os.PathLike[str],
) -> ssl.SSLContext:
    """A server context that asks clients for a certificate signed by ``client_ca``.

    The certificate is optional (``CERT_OPTIONAL``): a plugin admitted by a join token
    connects without one; one that presents a certificate the CA did not sign is refused
    by TLS itself.
    """
    from plugin_di.rpc.tls import load_server_tls

    context = load_server_tls(certfile, keyfile, client_ca).ssl_context()
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_certificate_context(
    tls: tuple[str | os.PathLike[str] | None, str | os.PathLike[str] | None],
    client_ca: str | os.PathLike[str],
) -> ssl.SSLContext:
    """The host's TLS context asking for client certificates signed by ``client_ca``; ``tls``
    is the host's (certfile, keyfile). Serve the app wrapped in `ClientCertScope`."""
    certfile, keyfile = tls
    if certfile is None or keyfile is None:
        raise ValueError(
            f"admission by client certificate (client CA {os.fspath(client_ca)!r}) needs "
            "the host to serve TLS: give it a certificate and key"
        )
    return client_ca_context(certfile, keyfile, client_ca)
