"""The capability broker: host capabilities, grants with expiring bearer tokens, and the
``/capabilities/{type}/{grant_id}/{method}`` endpoint that checks them.

A capability is any ASGI app (e.g. the logger plugin's services). No lock is held
while a capability call runs (connect-plugin-go serialized every call under its
broker lock, and a handler calling back into the broker deadlocked).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.gen.connectplugin.v1 import broker_pb2 as pb
from plugin_di.gen.connectplugin.v1 import handshake_pb2
from plugin_di.host.auth import TokenValidator, check_credentials
from plugin_di.host.tokens import generate_token
from plugin_di.plugin.definition import Plugin
from plugin_di.rpc.asgi import ASGIApp, Receive, Scope, Send, ServiceMux, send_error
from plugin_di.rpc.validation import SemVer, validate_service_type, validate_version

DEFAULT_CAPABILITY_GRANT_TTL = 3600.0
CAPABILITIES_PREFIX = "/capabilities/"


@dataclass(frozen=True)
class Capability:
    """A capability the host offers."""

    type: str
    version: str
    app: ASGIApp


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Grant:
    """A right to call one capability until ``expires_at``. The broker keeps the
    token's SHA-256 (hex) in ``token``; the grant `CapabilityBroker.request` returns
    holds the token itself."""

    grant_id: str
    capability_type: str
    token: str
    runtime_id: str
    expires_at: float


def capability_app(plugin: Plugin) -> ServiceMux:
    """An ASGI app serving an in-memory plugin's services (each must have an ``impl``)."""
    apps = []
    for service in plugin.services:
        if service.impl is None:
            raise ValueError(
                f"plugin {plugin.name!r} service {service.full_name} has no implementation; "
                "a capability needs impl="
            )
        apps.append(service.application(service.impl))
    return ServiceMux(apps)


class CapabilityBroker:
    """Capabilities by type, and the grants issued for them."""

    def __init__(
        self,
        base_url: str = "",
        *,
        ttl: float = DEFAULT_CAPABILITY_GRANT_TTL,
        clock: Clock = SYSTEM_CLOCK,
        grants: MutableMapping[str, Grant] | None = None,
    ) -> None:
        """``grants`` keeps the issued grants (a dict by default; the shared store's
        replicated map when hosts share their state)."""
        if ttl <= 0:
            raise ValueError(f"capability grant ttl must be positive, got {ttl}")
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl
        self._clock = clock
        self._capabilities: dict[str, Capability] = {}
        self._grants: MutableMapping[str, Grant] = grants if grants is not None else {}

    # -- capabilities --------------------------------------------------------------------
    def register(self, capability_type: str, version: str, app: ASGIApp | Plugin) -> None:
        """Offer ``app`` (an ASGI app, or an in-memory plugin) as ``capability_type``."""
        validate_service_type(capability_type, "capability_type")
        validate_version(version)
        asgi = capability_app(app) if isinstance(app, Plugin) else app
        self._capabilities[capability_type] = Capability(capability_type, version, asgi)

    def capabilities(self) -> list[handshake_pb2.Capability]:
        """The adverts sent in handshake responses."""
        return [
            handshake_pb2.Capability(type=c.type, version=c.version, endpoint=self.base_url)
            for c in self._capabilities.values()
        ]

    # -- grants --------------------------------------------------------------------------
    def request(self, runtime_id: str, capability_type: str, min_version: str = "") -> Grant:
        """Issue a grant; NOT_FOUND when the type is unknown or too old."""
        capability = self._capabilities.get(capability_type)
        if capability is None:
            offered = ", ".join(sorted(self._capabilities)) or "none"
            raise ConnectError(
                Code.NOT_FOUND,
                f"capability {capability_type!r} not available (the host offers: {offered})",
            )
        if min_version and SemVer.parse(capability.version) < SemVer.parse(
            min_version, "min_version"
        ):
            raise ConnectError(
                Code.NOT_FOUND,
                f"capability {capability_type!r} is version {capability.version}, older than "
                f"the requested min_version {min_version}",
            )
        grant = Grant(
            grant_id=base64.urlsafe_b64encode(secrets.token_bytes(16)).decode("ascii"),
            capability_type=capability_type,
            token=generate_token(),
            runtime_id=runtime_id,
            expires_at=self._clock.now() + self.ttl,
        )
        self._grants[grant.grant_id] = dataclasses.replace(grant, token=_digest(grant.token))
        return grant

    def endpoint_url(self, grant: Grant) -> str:
        return f"{self.base_url}{CAPABILITIES_PREFIX}{grant.capability_type}/{grant.grant_id}"

    def revoke_for(self, runtime_id: str) -> int:
        """Revoke every grant held by ``runtime_id``; how many there were."""
        doomed = [g for g, grant in self._grants.items() if grant.runtime_id == runtime_id]
        for grant_id in doomed:
            del self._grants[grant_id]
        return len(doomed)

    def sweep(self) -> int:
        """Purge expired grants; how many."""
        now = self._clock.now()
        doomed = [g for g, grant in self._grants.items() if now >= grant.expires_at]
        for grant_id in doomed:
            del self._grants[grant_id]
        return len(doomed)

    def grant_count(self) -> int:
        return len(self._grants)

    def check(self, capability_type: str, grant_id: str, token: str) -> Capability:
        """The capability a grant opens; UNAUTHENTICATED saying what is wrong."""
        grant = self._grants.get(grant_id)
        if grant is None:
            raise ConnectError(
                Code.UNAUTHENTICATED,
                "unknown capability grant (revoked or never issued): request the capability again",
            )
        if self._clock.now() >= grant.expires_at:
            del self._grants[grant_id]
            raise ConnectError(
                Code.UNAUTHENTICATED, "capability grant expired: request the capability again"
            )
        if not hmac.compare_digest(grant.token, _digest(token)):
            raise ConnectError(Code.UNAUTHENTICATED, "invalid bearer token for this grant")
        if grant.capability_type != capability_type:
            raise ConnectError(
                Code.PERMISSION_DENIED,
                f"this grant is for capability {grant.capability_type!r}, not {capability_type!r}",
            )
        capability = self._capabilities.get(capability_type)
        if capability is None:
            raise ConnectError(Code.UNAVAILABLE, f"capability {capability_type!r} was withdrawn")
        return capability

    # -- the /capabilities/ endpoint -----------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        rest = scope["path"].removeprefix(CAPABILITIES_PREFIX)
        parts = rest.split("/", 2)
        if len(parts) < 3 or not parts[0] or not parts[1] or not parts[2]:
            await send_error(
                scope,
                send,
                Code.NOT_FOUND,
                "invalid capability path: expected /capabilities/{type}/{grant_id}/{method}",
            )
            return
        capability_type, grant_id, method = parts
        token = ""
        for key, value in scope.get("headers", ()):
            if key.lower() == b"authorization":
                raw = bytes(value).decode("latin-1")
                if raw[:7].lower() == "bearer ":
                    token = raw[7:].strip()
        try:
            if not token:
                raise ConnectError(
                    Code.UNAUTHENTICATED, "missing 'Authorization: Bearer <grant token>' header"
                )
            capability = self.check(capability_type, grant_id, token)
        except ConnectError as error:
            await send_error(scope, send, error.code, error.message)
            return
        child = dict(scope)
        child["path"] = "/" + method
        child["raw_path"] = child["path"].encode()
        child["root_path"] = ""
        child["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"authorization"]
        await capability.app(child, receive, send)


class BrokerService:
    """The ``connectplugin.v1.CapabilityBroker`` Connect service (authenticated)."""

    def __init__(self, broker: CapabilityBroker, tokens: TokenValidator) -> None:
        self._broker = broker
        self._tokens = tokens

    async def request_capability(
        self,
        request: pb.RequestCapabilityRequest,
        ctx: RequestContext[pb.RequestCapabilityRequest, pb.RequestCapabilityResponse],
    ) -> pb.RequestCapabilityResponse:
        caller = check_credentials(ctx.request_headers.get, self._tokens)
        validate_service_type(request.capability_type, "capability_type")
        if request.min_version:
            validate_version(request.min_version, "min_version")
        grant = self._broker.request(caller, request.capability_type, request.min_version)
        capability = self._broker.check(grant.capability_type, grant.grant_id, grant.token)
        return pb.RequestCapabilityResponse(
            grant=pb.CapabilityGrant(
                grant_id=grant.grant_id,
                endpoint_url=self._broker.endpoint_url(grant),
                bearer_token=grant.token,
                capability_type=grant.capability_type,
                version=capability.version,
            )
        )
