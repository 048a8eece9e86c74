"""Automatic mTLS, plugin side (go-plugin's AutoMTLS).

When the launcher passes its ephemeral certificate in ``PLUGIN_CLIENT_CERT`` (PEM), the
plugin makes its own ephemeral certificate, serves TLS that requires a client certificate and
trusts only the launcher's, and returns its certificate in the handshake line's CERT field,
which the launcher's clients pin. No other client can complete a TLS handshake with the
plugin. ``cryptography`` is imported only when the variable is set.
"""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from plugin_di.plugin import env
from plugin_di.plugin.config import PluginConfigError

__all__ = ["AutoMTLS"]


@dataclass(frozen=True)
class AutoMTLS:
    """The plugin's pinned server context and its certificate (DER) for the handshake line."""

    ssl_context: ssl.SSLContext
    cert_der: bytes
    peer_fingerprint: str
    """SHA-256 (hex) of the only client certificate accepted: the launcher's."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> AutoMTLS | None:
        """Set up from ``PLUGIN_CLIENT_CERT``; None when it is not set."""
        environ = os.environ if environ is None else environ
        host_pem = environ.get(env.CLIENT_CERT, "").strip()
        if not host_pem:
            return None
        from plugin_di.rpc import tls  # cryptography: only for automatic mTLS

        try:
            host_der = tls.pem_to_der(host_pem.encode("ascii"))
        except ValueError as exc:
            raise PluginConfigError(
                f"{env.CLIENT_CERT} is not a PEM certificate ({exc}); the launcher must pass "
                "its ephemeral certificate, or unset it to serve without automatic mTLS"
            ) from None
        name = environ.get(env.PLUGIN_NAME, "") or "plugin"
        own = tls.generate_ephemeral_cert(f"plugin-di-plugin-{name}")
        context = tls.pinned_server_ssl_context(own, tls.der_to_pem(host_der))
        return cls(context, own.cert_der, hashlib.sha256(host_der).hexdigest())
