"""Plugin-side runtime: declaring plugins, serving them, and joining a host platform.

Imports only `plugin_di.rpc` and generated code, so a plugin process starts fast. The
public names are listed here and imported on first use; the rest (the handshake server,
health and control services, security, keepalive, the in-process dispatch) is machinery
the server wires together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_di._lazy import lazy_exports

__all__ = [
    "Dependency",
    "HandshakeLine",
    "HealthState",
    "HostClient",
    "HostClientError",
    "HostMembership",
    "HostSession",
    "IdentityStore",
    "Plugin",
    "PluginConfigError",
    "PluginDefinitionError",
    "PluginServeConfig",
    "PluginServer",
    "PluginSet",
    "PluginsLike",
    "RuntimeIdentity",
    "Service",
    "follow_identity",
    "inprocess_client",
    "join_host",
    "managed_session",
    "self_register",
    "serve",
    "serve_async",
    "serve_on_host",
]

if TYPE_CHECKING:
    from plugin_di.plugin.config import PluginConfigError, PluginServeConfig
    from plugin_di.plugin.definition import (
        Dependency,
        Plugin,
        PluginDefinitionError,
        PluginSet,
        PluginsLike,
        Service,
    )
    from plugin_di.plugin.handshake_line import HandshakeLine
    from plugin_di.plugin.health import HealthState
    from plugin_di.plugin.host_client import HostClient, HostClientError
    from plugin_di.plugin.host_membership import HostMembership, join_host
    from plugin_di.plugin.host_session import (
        HostSession,
        follow_identity,
        managed_session,
        self_register,
    )
    from plugin_di.plugin.identity import IdentityStore, RuntimeIdentity
    from plugin_di.plugin.inprocess import inprocess_client
    from plugin_di.plugin.runtime import PluginServer
    from plugin_di.plugin.server import serve, serve_async, serve_on_host

__getattr__ = lazy_exports(
    __name__,
    {
        "plugin_di.plugin.config": ("PluginConfigError", "PluginServeConfig"),
        "plugin_di.plugin.definition": (
            "Dependency",
            "Plugin",
            "PluginDefinitionError",
            "PluginSet",
            "PluginsLike",
            "Service",
        ),
        "plugin_di.plugin.handshake_line": ("HandshakeLine",),
        "plugin_di.plugin.health": ("HealthState",),
        "plugin_di.plugin.host_client": ("HostClient", "HostClientError"),
        "plugin_di.plugin.host_membership": ("HostMembership", "join_host"),
        "plugin_di.plugin.host_session": (
            "HostSession",
            "follow_identity",
            "managed_session",
            "self_register",
        ),
        "plugin_di.plugin.identity": ("IdentityStore", "RuntimeIdentity"),
        "plugin_di.plugin.inprocess": ("inprocess_client",),
        "plugin_di.plugin.runtime": ("PluginServer",),
        "plugin_di.plugin.server": ("serve", "serve_async", "serve_on_host"),
    },
)
