"""The plugin's RPC client to the host platform: handshake, registry, health, broker.

``HostClient`` speaks to a host: a handshake with ``self_id`` (self-registering)
or an identity the host handed over (platform-managed), then every call carries
``Authorization: Bearer <token>`` and ``X-Plugin-Runtime-ID`` (`BearerAuth`).
What a plugin does with it (register, watch, report health) is a `HostSession`
(`plugin_di.plugin.host_session`); joining a serving plugin to a host is
`plugin_di.plugin.host_membership`. The names that used to be imported from here
(``HostSession``, ``follow_identity``, ``serve_on_host``, ...) still are, with a
DeprecationWarning: import them from `plugin_di.plugin`.

Plugin layer: imports only rpc and generated code (no host, networkx or pydantic).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import pyqwest
from connectrpc.client import ConnectClient
from connectrpc.request import RequestContext

from plugin_di.gen.connectplugin.v1 import broker_pb2, handshake_pb2, lifecycle_pb2, registry_pb2
from plugin_di.gen.connectplugin.v1.broker_connect import CapabilityBrokerClient
from plugin_di.gen.connectplugin.v1.handshake_connect import HandshakeServiceClient
from plugin_di.gen.connectplugin.v1.lifecycle_connect import PluginLifecycleClient
from plugin_di.gen.connectplugin.v1.registry_connect import ServiceRegistryClient
from plugin_di.plugin import env
from plugin_di.plugin.definition import Plugin
from plugin_di.plugin.env import (
    BASE_URL_KEY,
    HEARTBEAT_KEY,
    LEASE_TTL_KEY,
    PROVIDES_KEY,
    REQUIRES_KEY,
)
from plugin_di.plugin.identity import RuntimeIdentity
from plugin_di.rpc.before_call import BeforeCall
from plugin_di.rpc.telemetry import current as current_telemetry
from plugin_di.rpc.transport import PluginHTTPClient, client_address, http_client
from plugin_di.rpc.unary_client import attach_unary_wire, unary_client_class

__all__ = [
    "BASE_URL_KEY",
    "DEGRADED",
    "HEALTHY",
    "HEARTBEAT_KEY",
    "LEASE_TTL_KEY",
    "PROVIDES_KEY",
    "REQUIRES_KEY",
    "UNHEALTHY",
    "BearerAuth",
    "ClientT",
    "HostClient",
    "HostClientError",
    "declaration_metadata",
]

ClientT = TypeVar("ClientT", bound=ConnectClient)


HEALTHY = lifecycle_pb2.HEALTH_STATE_HEALTHY
DEGRADED = lifecycle_pb2.HEALTH_STATE_DEGRADED
UNHEALTHY = lifecycle_pb2.HEALTH_STATE_UNHEALTHY

_NO_COMPRESSION: dict[str, Any] = {"send_compression": None, "accept_compression": []}


class HostClientError(Exception):
    """The plugin has no identity yet, or the host refused it."""


class BearerAuth(BeforeCall):
    """Client interceptor adding a runtime identity's headers to every call."""

    def __init__(self, identity: Callable[[], RuntimeIdentity | None]) -> None:
        self._identity = identity

    def before(self, ctx: RequestContext[Any, Any]) -> None:
        identity = self._identity()
        if identity is None:
            raise HostClientError("no runtime identity yet: handshake with the host first")
        if identity.runtime_token:
            ctx.request_headers["authorization"] = f"Bearer {identity.runtime_token}"
        if identity.runtime_id:
            ctx.request_headers["x-plugin-runtime-id"] = identity.runtime_id


def declaration_metadata(plugins: Sequence[Plugin], base_url: str = "") -> dict[str, str]:
    """The handshake ``client_metadata`` declaring what ``plugins`` provide and require."""
    provides = [f"{s.service_type}@{s.version}" for p in plugins for s in p.services]
    requires = [
        ("" if d.required_for_startup else "?")
        + d.type
        + (f"@{d.min_version}" if d.min_version else "")
        for p in plugins
        for d in p.requires
    ]
    metadata = {
        PROVIDES_KEY: ",".join(provides),
        REQUIRES_KEY: ",".join(requires),
        HEARTBEAT_KEY: "1",
    }
    if base_url:
        metadata[BASE_URL_KEY] = base_url
    return metadata


class HostClient:
    """Calls from a plugin to the host platform.

    ``host_url`` is the host's ``url`` or, for a plugin on the host's machine, its
    ``local_url`` (``unix:///path`` or ``http://127.0.0.1:PORT``). The transport is
    `plugin_di.rpc.transport.http_client`'s for the URL: ``http://`` speaks HTTP/1.1 with
    keep-alive (as connect-plugin-go's host serves), gRPC calls over h2c; ``https://``
    negotiates by ALPN.
    """

    def __init__(
        self,
        host_url: str,
        *,
        http_client: pyqwest.Client | None = None,
        identity: RuntimeIdentity | None = None,
        magic_cookie_key: str = env.DEFAULT_MAGIC_COOKIE_KEY,
        magic_cookie_value: str = env.DEFAULT_MAGIC_COOKIE_VALUE,
    ) -> None:
        self.host_url = host_url.rstrip("/")
        self.identity = identity
        self.lease_ttl: float | None = None
        """Seconds the host keeps this plugin registered without a heartbeat (announced
        in the handshake by hosts on a shared store), else None."""
        self._cookie = (magic_cookie_key, magic_cookie_value)
        self._owned: PluginHTTPClient | None = None
        if http_client is None:
            self._owned = http_client = _client_for(self.host_url)
        self.http_client = http_client
        # The base URL generated clients use: a Unix socket's is http://localhost.
        if isinstance(http_client, PluginHTTPClient):
            self.address = http_client.address
        else:
            self.address = client_address(self.host_url)
        self.auth = BearerAuth(lambda: self.identity)
        common: dict[str, Any] = {"http_client": http_client, **_NO_COMPRESSION}
        self._handshake = HandshakeServiceClient(self.address, **common)
        authed: dict[str, Any] = {**common, "interceptors": [self.auth]}
        self.registry = ServiceRegistryClient(self.address, **authed)
        self.lifecycle = PluginLifecycleClient(self.address, **authed)
        self.broker = CapabilityBrokerClient(self.address, **authed)

    async def handshake(
        self,
        self_id: str,
        *,
        plugins: Sequence[Plugin] = (),
        base_url: str = "",
        self_version: str = "",
        app_versions: Sequence[int] = (1,),
        join_token: str = "",
    ) -> RuntimeIdentity:
        """Self-register: get a runtime identity, declaring what ``plugins`` provide.

        ``join_token`` (``PLUGIN_DI_JOIN_TOKEN``: a join token, or a launch secret) is the
        credential the host admits the plugin by; it is sent as ``Authorization: Bearer``
        on this call only.
        """
        headers = {"authorization": f"Bearer {join_token}"} if join_token else None
        response = await self._handshake.handshake(
            handshake_pb2.HandshakeRequest(
                core_protocol_version=env.CORE_PROTOCOL_VERSION,
                app_protocol_version=max(app_versions),
                app_protocol_versions=list(app_versions),
                magic_cookie_key=self._cookie[0],
                magic_cookie_value=self._cookie[1],
                self_id=self_id,
                self_version=self_version,
                client_metadata=declaration_metadata(plugins, base_url),
            ),
            headers=headers,
        )
        if not response.runtime_id or not response.runtime_token:
            raise HostClientError(f"host at {self.host_url} issued no runtime identity")
        try:
            self.lease_ttl = float(response.server_metadata[LEASE_TTL_KEY])
        except (KeyError, ValueError):
            self.lease_ttl = None
        self.identity = RuntimeIdentity(response.runtime_id, response.runtime_token, self.host_url)
        return self.identity

    async def register(
        self,
        service_type: str,
        version: str,
        endpoint_path: str,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Register a provided service; its registration id."""
        response = await self.registry.register_service(
            registry_pb2.RegisterServiceRequest(
                service_type=service_type,
                version=version,
                endpoint_path=endpoint_path,
                metadata=metadata or {},
            )
        )
        return response.registration_id

    async def unregister(self, registration_id: str) -> None:
        """Withdraw a registration made with `register`."""
        await self.registry.unregister_service(
            registry_pb2.UnregisterServiceRequest(registration_id=registration_id)
        )

    async def discover(
        self, service_type: str, min_version: str = ""
    ) -> registry_pb2.DiscoverServiceResponse:
        """One provider of ``service_type`` (NOT_FOUND ConnectError when there is none)."""
        return await self.registry.discover_service(
            registry_pb2.DiscoverServiceRequest(service_type=service_type, min_version=min_version)
        )

    def watch(self, service_type: str) -> AsyncIterator[registry_pb2.WatchServiceEvent]:
        """The current state of a type, then every change."""
        return self.registry.watch_service(
            registry_pb2.WatchServiceRequest(service_type=service_type)
        )

    async def report_health(
        self, state: int, reason: str = "", unavailable: Sequence[str] = ()
    ) -> None:
        """Tell the host this plugin's health and which dependencies it lacks."""
        await self.lifecycle.report_health(
            lifecycle_pb2.ReportHealthRequest(
                state=state,  # type: ignore[arg-type]
                reason=reason,
                unavailable_dependencies=list(unavailable),
            )
        )

    async def request_capability(
        self, capability_type: str, min_version: str = "", reason: str = ""
    ) -> broker_pb2.CapabilityGrant:
        """A grant (endpoint URL, bearer token, expiry) for a host capability."""
        response = await self.broker.request_capability(
            broker_pb2.RequestCapabilityRequest(
                capability_type=capability_type, min_version=min_version, reason=reason
            )
        )
        return response.grant

    def routed_client(
        self, client_class: type[ClientT], endpoint: registry_pb2.ServiceEndpoint
    ) -> ClientT:
        """A typed client calling a discovered provider through the host's router."""
        telemetry = current_telemetry()
        base = self.address + endpoint.endpoint_url
        client = unary_client_class(client_class)(
            base,
            http_client=self.http_client,
            interceptors=[*(telemetry.client_interceptors() if telemetry else ()), self.auth],
            **_NO_COMPRESSION,
        )
        link = (
            self.http_client.wire_link() if isinstance(self.http_client, PluginHTTPClient) else None
        )
        if link is not None:  # unary calls as bytes on the lean transport, to the route
            routed = link.at(base)
            attach_unary_wire(client, lambda: routed)
        return client

    async def close(self) -> None:
        """Close the HTTP transport this client created (not one it was given)."""
        if self._owned is not None:
            await self._owned.aclose()  # lets pyqwest's threads settle, if they ran
            self._owned = None


def _client_for(url: str) -> PluginHTTPClient:
    """The client for a host URL: `plugin_di.rpc.transport.http_client`'s choice."""
    return http_client(url)


# Names this module used to hold, now in the module of their job (read lazily: the
# session and the server import this module, not the other way round).
_MOVED = {
    "HostSession": "plugin_di.plugin.host_session",
    "follow_identity": "plugin_di.plugin.host_session",
    "managed_session": "plugin_di.plugin.host_session",
    "self_register": "plugin_di.plugin.host_session",
    "HostMembership": "plugin_di.plugin.host_membership",
    "join_host": "plugin_di.plugin.host_membership",
    "serve_on_host": "plugin_di.plugin.server",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"import {name} from plugin_di.plugin (it lives in {module}), not from {__name__}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)
