"""PluginIdentity: the plugin describes itself, and the host hands it a runtime identity.

This is connect-plugin-go's "Model A" (platform-managed): the host calls
GetPluginInfo, mints a runtime ID and token, and calls SetRuntimeIdentity. The
plugin keeps the identity for its own calls back to the host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.gen.connectplugin.v1 import plugininfo_pb2 as pb
from plugin_di.gen.connectplugin.v1.plugininfo_connect import PluginIdentity
from plugin_di.plugin.definition import Plugin
from plugin_di.plugin.handshake import plugin_info


@dataclass(frozen=True)
class RuntimeIdentity:
    """What the host assigned: the runtime ID, its bearer token and the host's URL."""

    runtime_id: str
    runtime_token: str
    host_url: str = ""


class IdentityStore:
    """Holds the runtime identity once the host has set it."""

    def __init__(self) -> None:
        self._identity: RuntimeIdentity | None = None
        self._set = asyncio.Event()

    @property
    def identity(self) -> RuntimeIdentity | None:
        """The identity, or None before the host set one."""
        return self._identity

    def set(self, identity: RuntimeIdentity) -> None:
        """Store (or replace) the identity and wake waiters."""
        self._identity = identity
        self._set.set()

    async def wait(self) -> RuntimeIdentity:
        """Wait until the host has set an identity."""
        await self._set.wait()
        assert self._identity is not None
        return self._identity


class PluginIdentityServer(PluginIdentity):
    """``connectplugin.v1.PluginIdentity`` for the plugins one process serves."""

    def __init__(self, plugins: Sequence[Plugin], store: IdentityStore) -> None:
        if not plugins:
            raise ValueError("PluginIdentityServer needs at least one plugin")
        self._plugins = list(plugins)
        self._store = store

    async def get_plugin_info(
        self,
        request: pb.GetPluginInfoRequest,
        ctx: RequestContext[pb.GetPluginInfoRequest, pb.GetPluginInfoResponse],
    ) -> pb.GetPluginInfoResponse:
        first = self._plugins[0]
        response = pb.GetPluginInfoResponse(
            self_id="+".join(p.name for p in self._plugins),
            self_version=first.version,
            metadata={"name": first.name, "version": first.version, **first.metadata},
        )
        for plugin in self._plugins:
            info = plugin_info(plugin)
            response.provides.extend(info.provides)
            response.requires.extend(info.requires)
        return response

    async def set_runtime_identity(
        self,
        request: pb.SetRuntimeIdentityRequest,
        ctx: RequestContext[pb.SetRuntimeIdentityRequest, pb.SetRuntimeIdentityResponse],
    ) -> pb.SetRuntimeIdentityResponse:
        missing = [f for f in ("runtime_id", "runtime_token") if not getattr(request, f)]
        if missing:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"SetRuntimeIdentity needs {' and '.join(missing)}",
            )
        self._store.set(
            RuntimeIdentity(request.runtime_id, request.runtime_token, request.host_url)
        )
        return pb.SetRuntimeIdentityResponse(acknowledged=True)
