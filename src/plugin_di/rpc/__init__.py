"""Transports, interceptors, error mapping and validation for Connect RPC.

The public names are listed here and imported on first use, so a plugin process loads
only what it serves with. The serving entry is `plugin_di.rpc.serving`, the interceptors
`plugin_di.rpc.interceptors`; the HTTP/1.1 connection code, the short paths and the
codec tweaks are machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_di._lazy import lazy_exports

__all__ = [
    "BeforeCall",
    "CertKeyPair",
    "ClientTLS",
    "HTTPMode",
    "InsecureTransportError",
    "PluginHTTPClient",
    "PluginSyncHTTPClient",
    "SanitizeErrors",
    "SemVer",
    "ServerTLS",
    "connect_client",
    "http_client",
    "sync_http_client",
]

if TYPE_CHECKING:
    from plugin_di.rpc.before_call import BeforeCall
    from plugin_di.rpc.errors import SanitizeErrors
    from plugin_di.rpc.tls import CertKeyPair, ClientTLS, InsecureTransportError, ServerTLS
    from plugin_di.rpc.transport import (
        HTTPMode,
        PluginHTTPClient,
        PluginSyncHTTPClient,
        connect_client,
        http_client,
        sync_http_client,
    )
    from plugin_di.rpc.validation import SemVer

__getattr__ = lazy_exports(
    __name__,
    {
        "plugin_di.rpc.before_call": ("BeforeCall",),
        "plugin_di.rpc.errors": ("SanitizeErrors",),
        "plugin_di.rpc.tls": ("CertKeyPair", "ClientTLS", "InsecureTransportError", "ServerTLS"),
        "plugin_di.rpc.transport": (
            "HTTPMode",
            "PluginHTTPClient",
            "PluginSyncHTTPClient",
            "connect_client",
            "http_client",
            "sync_http_client",
        ),
        "plugin_di.rpc.validation": ("SemVer",),
    },
)
