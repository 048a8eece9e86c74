"""The host's HandshakeService: protocol checks, and identities for self-registering plugins.

A plugin started elsewhere (self-registering, "Model B") sends ``self_id`` and, once
admitted (`plugin_di.host.admission`: a join token or launch secret in the call's
``Authorization`` header, a client certificate, an allow-list entry), receives
``<self_id>-<hex>`` and a token. What admission granted is all RegisterService allows.

A plugin-di plugin also describes itself in ``client_metadata`` (the wire protocol has no
field for it); the host records it for its dependency graph, never as a grant:

- ``plugin-di.provides``: ``type@version`` entries, comma-separated (those outside the
  grant are dropped);
- ``plugin-di.requires``: ``type@min_version`` entries; a leading ``?`` marks an
  optional dependency;
- ``plugin-di.base-url``: where the plugin serves (used by the router).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di._version import __version__
from plugin_di.gen.connectplugin.v1 import handshake_pb2 as pb
from plugin_di.host.admission import Admission
from plugin_di.host.client_cert import current_client_cert_name
from plugin_di.host.store import Declaration, PluginRecord, Requirement
from plugin_di.host.tokens import TokenStore
from plugin_di.plugin.env import (
    BASE_URL_KEY,
    CORE_PROTOCOL_VERSION,
    DEFAULT_MAGIC_COOKIE_KEY,
    DEFAULT_MAGIC_COOKIE_VALUE,
    PROVIDES_KEY,
    REQUIRES_KEY,
)
from plugin_di.rpc.validation import validate_service_type, validate_version

SERVER_VERSION = __version__

log = logging.getLogger(__name__)

OnIdentity = Callable[[PluginRecord, "frozenset[str] | None"], None]
"""Told of each admitted plugin: its record and the service types it may register
(None: any, under open registration)."""


def format_provides(declarations: Sequence[Declaration]) -> str:
    """The ``plugin-di.provides`` value for ``declarations``."""
    return ",".join(f"{d.type}@{d.version}" for d in declarations)


def format_requires(requirements: Sequence[Requirement]) -> str:
    """The ``plugin-di.requires`` value for ``requirements``."""
    parts = []
    for r in requirements:
        entry = ("" if r.required_for_startup else "?") + r.type
        parts.append(entry + (f"@{r.min_version}" if r.min_version else ""))
    return ",".join(parts)


def parse_declarations(metadata: Mapping[str, str]) -> tuple[tuple[Declaration, ...],
                                                              tuple[Requirement, ...]]:  # fmt: skip
    """Provides and requires from handshake client metadata; INVALID_ARGUMENT if malformed."""
    provides = []
    for entry in filter(None, (e.strip() for e in metadata.get(PROVIDES_KEY, "").split(","))):
        service_type, _, version = entry.partition("@")
        validate_service_type(service_type, f"client_metadata[{PROVIDES_KEY}]")
        version = version or "1.0.0"
        validate_version(version, f"client_metadata[{PROVIDES_KEY}]")
        provides.append(Declaration(service_type, version))
    requires = []
    for entry in filter(None, (e.strip() for e in metadata.get(REQUIRES_KEY, "").split(","))):
        optional = entry.startswith("?")
        service_type, _, min_version = entry.lstrip("?").partition("@")
        validate_service_type(service_type, f"client_metadata[{REQUIRES_KEY}]")
        if min_version:
            validate_version(min_version, f"client_metadata[{REQUIRES_KEY}]")
        requires.append(Requirement(service_type, min_version, not optional))
    return tuple(provides), tuple(requires)


class HandshakeService:
    """The ``connectplugin.v1.HandshakeService`` as the host serves it."""

    def __init__(
        self,
        tokens: TokenStore,
        admission: Admission,
        *,
        on_identity: OnIdentity = lambda record, provides: None,
        capabilities: Callable[[], list[pb.Capability]] = list,
        app_versions: Sequence[int] = (1,),
        magic_cookie_key: str = DEFAULT_MAGIC_COOKIE_KEY,
        magic_cookie_value: str = DEFAULT_MAGIC_COOKIE_VALUE,
        server_metadata: Mapping[str, str] | None = None,
    ) -> None:
        self._tokens = tokens
        self._server_metadata = {"server_version": SERVER_VERSION, **(server_metadata or {})}
        self._admission = admission
        self._on_identity = on_identity
        self._capabilities = capabilities
        self._app_versions = sorted(set(app_versions))
        self._cookie = (magic_cookie_key, magic_cookie_value)

    def negotiate(self, request: pb.HandshakeRequest) -> int:
        """Check cookie and versions; the application version both sides speak."""
        if (request.magic_cookie_key, request.magic_cookie_value) != self._cookie:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                "invalid magic cookie - this may not be a connect-plugin server",
            )
        if request.core_protocol_version != CORE_PROTOCOL_VERSION:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"unsupported core protocol version: {request.core_protocol_version} "
                f"(server supports: {CORE_PROTOCOL_VERSION})",
            )
        offered = list(request.app_protocol_versions) or [request.app_protocol_version or 1]
        common = set(offered) & set(self._app_versions)
        if not common:
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                f"version mismatch: client offers {sorted(set(offered))}, host supports "
                f"{self._app_versions}",
            )
        return int(max(common))

    async def handshake(
        self,
        request: pb.HandshakeRequest,
        ctx: RequestContext[pb.HandshakeRequest, pb.HandshakeResponse],
    ) -> pb.HandshakeResponse:
        app_version = self.negotiate(request)
        response = pb.HandshakeResponse(
            core_protocol_version=CORE_PROTOCOL_VERSION,
            app_protocol_version=app_version,
            server_metadata=self._server_metadata,
            host_capabilities=self._capabilities(),
        )
        if request.self_id:
            admitted = self._admission.admit(
                request.self_id,
                authorization=ctx.request_headers.get("authorization"),
                certificate_name=current_client_cert_name(),
                peer=ctx.client_address,
            )
            metadata = dict(request.client_metadata)
            provides, requires = parse_declarations(metadata)
            if admitted.provides is not None:
                provides = tuple(d for d in provides if d.type in admitted.provides)
            identity = self._tokens.issue(request.self_id)
            self._on_identity(
                PluginRecord(
                    runtime_id=identity.runtime_id,
                    self_id=request.self_id,
                    version=request.self_version,
                    provides=provides,
                    requires=requires,
                    base_url=metadata.get(BASE_URL_KEY, ""),
                    metadata=metadata,
                ),
                admitted.provides,
            )
            log.info("admitted %s by %s", identity.runtime_id, admitted.describe())
            response.runtime_id = identity.runtime_id
            response.runtime_token = identity.token
        return response
