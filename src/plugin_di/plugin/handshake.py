"""The plugin side of the handshake: magic cookie, protocol versions, plugin descriptions.

Order and codes follow connect-plugin-go (reference section 1.2), with one
extension: the client may offer several application protocol versions
(``app_protocol_versions``, field 101) and the plugin picks the highest one
both sides speak, as hashicorp/go-plugin does with ``PLUGIN_PROTOCOL_VERSIONS``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping, Sequence

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di._version import __version__
from plugin_di.gen.connectplugin.v1 import handshake_pb2 as pb
from plugin_di.gen.connectplugin.v1.handshake_connect import HandshakeService
from plugin_di.plugin.definition import Plugin
from plugin_di.plugin.env import (
    CORE_PROTOCOL_VERSION,
    DEFAULT_MAGIC_COOKIE_KEY,
    DEFAULT_MAGIC_COOKIE_VALUE,
)


class VersionMismatchError(ValueError):
    """The two sides share no application protocol version."""

    def __init__(self, client: Sequence[int], server: Sequence[int]) -> None:
        self.client = tuple(client)
        self.server = tuple(server)
        super().__init__(
            f"no common application protocol version: client speaks "
            f"{_versions(client)}, plugin speaks {_versions(server)}; "
            "upgrade one side or widen the versions it accepts"
        )


def _versions(versions: Iterable[int]) -> str:
    return "[" + ", ".join(str(v) for v in sorted(set(versions))) + "]"


def negotiate_version(client: Iterable[int], server: Iterable[int]) -> int:
    """The highest version both sides speak; VersionMismatchError when there is none."""
    client_set, server_set = set(client), set(server)
    common = client_set & server_set
    if not common:
        raise VersionMismatchError(sorted(client_set), sorted(server_set))
    return max(common)


def offered_versions(request: pb.HandshakeRequest) -> list[int]:
    """The versions a handshake request offers (the list, else the single field, else 1)."""
    if request.app_protocol_versions:
        return list(request.app_protocol_versions)
    return [request.app_protocol_version or 1]


def service_root(path: str) -> str:
    """connect-plugin-go writes service paths with a trailing slash: ``/kv.v1.KVService/``."""
    return path.rstrip("/") + "/"


def plugin_info(plugin: Plugin) -> pb.PluginInfo:
    """The PluginInfo a handshake returns for ``plugin``."""
    info = pb.PluginInfo(
        name=plugin.name,
        version=plugin.version,
        service_path=service_root(plugin.services[0].path),
    )
    for service in plugin.services:
        info.provides.add(
            type=service.service_type, version=service.version, path=service_root(service.path)
        )
    for dep in plugin.requires:
        info.requires.add(
            type=dep.type,
            min_version=dep.min_version,
            required_for_startup=dep.required_for_startup,
            watch_for_changes=dep.watch_for_changes,
        )
    return info


class HandshakeServer(HandshakeService):
    """``connectplugin.v1.HandshakeService`` for the plugins one process serves."""

    def __init__(
        self,
        plugins: Mapping[str, Plugin],
        *,
        magic_cookie_key: str = DEFAULT_MAGIC_COOKIE_KEY,
        magic_cookie_value: str = DEFAULT_MAGIC_COOKIE_VALUE,
        app_protocol_versions: Sequence[int] = (1,),
        server_metadata: Mapping[str, str] | None = None,
    ) -> None:
        if not magic_cookie_key:
            magic_cookie_key, magic_cookie_value = (
                DEFAULT_MAGIC_COOKIE_KEY,
                DEFAULT_MAGIC_COOKIE_VALUE,
            )
        self._plugins = dict(plugins)
        self._cookie_key = magic_cookie_key
        self._cookie_value = magic_cookie_value
        self._versions = tuple(app_protocol_versions) or (1,)
        self._metadata = {"server_version": __version__, **(server_metadata or {})}

    async def handshake(
        self,
        request: pb.HandshakeRequest,
        ctx: RequestContext[pb.HandshakeRequest, pb.HandshakeResponse],
    ) -> pb.HandshakeResponse:
        # The cookie guards against talking to the wrong program; it is not a secret. Bytes:
        # compare_digest raises on str with non-ASCII characters, which a caller may send.
        if not (
            hmac.compare_digest(request.magic_cookie_key.encode(), self._cookie_key.encode())
            and hmac.compare_digest(
                request.magic_cookie_value.encode(), self._cookie_value.encode()
            )
        ):
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                "invalid magic cookie - this may not be a connect-plugin server; "
                "check that host and plugin use the same magic cookie key and value",
            )
        if request.core_protocol_version != CORE_PROTOCOL_VERSION:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"unsupported core protocol version: {request.core_protocol_version} "
                f"(server supports: {CORE_PROTOCOL_VERSION})",
            )
        try:
            version = negotiate_version(offered_versions(request), self._versions)
        except VersionMismatchError as exc:
            raise ConnectError(Code.FAILED_PRECONDITION, f"version mismatch: {exc}") from None
        # No requested plugin means "describe everything" (connect-plugin-go returns none).
        names = list(request.requested_plugins) or sorted(self._plugins)
        unknown = [n for n in names if n not in self._plugins]
        if unknown:
            raise ConnectError(
                Code.NOT_FOUND,
                f"requested plugin(s) {', '.join(repr(n) for n in unknown)} not served here "
                f"(served: {', '.join(sorted(self._plugins)) or 'none'})",
            )
        response = pb.HandshakeResponse(
            core_protocol_version=CORE_PROTOCOL_VERSION,
            app_protocol_version=version,
            server_metadata=self._metadata,
        )
        response.plugins.extend(plugin_info(self._plugins[n]) for n in names)
        return response
