"""The host platform: identity, registry, router, capability broker, health tracking.

The public names are listed here and imported on first use (a plugin process never loads
this package). `Host` wires the parts together and serves them; the rest (the relay, the
splice pool, the listeners, the short routes) is machinery `Host` builds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_di._lazy import lazy_exports

__all__ = [
    "AdmissionPolicy",
    "Admitted",
    "AdmittedBy",
    "Capability",
    "CapabilityBroker",
    "DependencyGraph",
    "DependencyGraphError",
    "Grant",
    "HealthReport",
    "HealthTracker",
    "Host",
    "HostConfig",
    "Impact",
    "InMemoryStore",
    "JoinClaims",
    "JoinTokenError",
    "Platform",
    "PlatformError",
    "PluginRecord",
    "RegistryStore",
    "RemovalPolicy",
    "ServiceRegistry",
    "ServiceRouter",
    "Strategy",
    "TokenStore",
]

if TYPE_CHECKING:
    from plugin_di.host.admission import AdmissionPolicy, Admitted, AdmittedBy
    from plugin_di.host.broker import Capability, CapabilityBroker, Grant
    from plugin_di.host.config import HostConfig
    from plugin_di.host.depgraph import DependencyGraph, DependencyGraphError, Impact
    from plugin_di.host.join_tokens import JoinClaims, JoinTokenError
    from plugin_di.host.platform import Platform, PlatformError, RemovalPolicy
    from plugin_di.host.registry import ServiceRegistry
    from plugin_di.host.router import ServiceRouter
    from plugin_di.host.selection import Strategy
    from plugin_di.host.server import Host
    from plugin_di.host.store import InMemoryStore, PluginRecord, RegistryStore
    from plugin_di.host.tokens import TokenStore
    from plugin_di.host.tracker import HealthReport, HealthTracker

__getattr__ = lazy_exports(
    __name__,
    {
        "plugin_di.host.admission": ("AdmissionPolicy", "Admitted", "AdmittedBy"),
        "plugin_di.host.broker": ("Capability", "CapabilityBroker", "Grant"),
        "plugin_di.host.config": ("HostConfig",),
        "plugin_di.host.depgraph": ("DependencyGraph", "DependencyGraphError", "Impact"),
        "plugin_di.host.join_tokens": ("JoinClaims", "JoinTokenError"),
        "plugin_di.host.platform": ("Platform", "PlatformError", "RemovalPolicy"),
        "plugin_di.host.registry": ("ServiceRegistry",),
        "plugin_di.host.router": ("ServiceRouter",),
        "plugin_di.host.selection": ("Strategy",),
        "plugin_di.host.server": ("Host",),
        "plugin_di.host.store": ("InMemoryStore", "PluginRecord", "RegistryStore"),
        "plugin_di.host.tokens": ("TokenStore",),
        "plugin_di.host.tracker": ("HealthReport", "HealthTracker"),
    },
)
