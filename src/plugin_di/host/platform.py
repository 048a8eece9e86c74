"""Changing plugins at runtime: add (platform-managed), remove, and blue-green replace.

Add: ask the plugin who it is (GetPluginInfo), check its startup dependencies,
admit it to register what its definition declares (adding it is the operator's
admission), mint and *store* its identity, hand it over (SetRuntimeIdentity), route to it,
and wait (event-driven) until it reports HEALTHY or DEGRADED.

Remove: dependents losing a required service are told (DEGRADED with the lost
types as unavailable dependencies, and registry watchers see the change), or
are removed too under the ``stop`` policy; in-flight routed calls drain; the
plugin is asked to shut down; its token, grants and registrations go.

Replace: add the new plugin, switch its predecessor's routes to it in one step,
drain the old one's in-flight calls, then remove it. Calls addressed to the old
provider id keep working, so a replace under load fails no call.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import pyqwest
from pyqwest.testing import ASGITransport

from plugin_di.gen.connectplugin.v1 import lifecycle_pb2, plugininfo_pb2
from plugin_di.gen.connectplugin.v1.lifecycle_connect import PluginControlClient
from plugin_di.gen.connectplugin.v1.plugininfo_connect import PluginIdentityClient
from plugin_di.host.admission import Admitted, AdmittedBy
from plugin_di.host.depgraph import DependencyGraph, Impact
from plugin_di.host.registry import ServiceRegistry
from plugin_di.host.router import ServiceRouter, Upstream
from plugin_di.host.store import Declaration, PluginRecord, Requirement
from plugin_di.host.tokens import TokenStore, generate_token
from plugin_di.host.tracker import DEGRADED, HEALTHY, HealthTracker
from plugin_di.rpc.asgi import ASGIApp
from plugin_di.rpc.transport import http_client

log = logging.getLogger(__name__)

_NO_COMPRESSION: dict[str, Any] = {"send_compression": None, "accept_compression": []}


class PlatformError(Exception):
    """A runtime change could not be made; the message says which plugin and why."""


class RemovalPolicy(enum.Enum):
    """What happens to plugins that lose a required service."""

    DEGRADE = "degrade"
    STOP = "stop"


@dataclass
class _Link:
    """Host-side clients to one managed plugin."""

    upstream: Upstream
    identity: PluginIdentityClient
    control: PluginControlClient
    transport: Any

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.identity.close()
            await self.control.close()
        close = getattr(self.transport, "aclose", None) or getattr(self.transport, "close", None)
        if close is not None:
            await close()


def _link(endpoint: str | ASGIApp) -> _Link:
    client: pyqwest.Client
    closer: Any
    if isinstance(endpoint, str):
        plugin_client = http_client(endpoint)
        client, closer, base = plugin_client, plugin_client, plugin_client.address
        upstream = Upstream(url=endpoint.rstrip("/"))
    else:
        transport = ASGITransport(endpoint)
        client, closer, base = pyqwest.Client(transport), transport, "http://in-memory.plugin"
        upstream = Upstream(app=endpoint)
    return _Link(
        upstream,
        PluginIdentityClient(base, http_client=client, **_NO_COMPRESSION),
        PluginControlClient(base, http_client=client, **_NO_COMPRESSION),
        closer,
    )


def _record(runtime_id: str, info: plugininfo_pb2.GetPluginInfoResponse, self_id: str,
            base_url: str) -> PluginRecord:  # fmt: skip
    return PluginRecord(
        runtime_id=runtime_id,
        self_id=self_id,
        version=info.self_version,
        provides=tuple(Declaration(d.type, d.version, d.path) for d in info.provides),
        requires=tuple(
            Requirement(r.type, r.min_version, r.required_for_startup, r.watch_for_changes)
            for r in info.requires
        ),
        base_url=base_url,
        metadata=dict(info.metadata),
    )


class PlatformParts(Protocol):
    """What the platform changes on a host: its parts, and how a plugin joins or leaves."""

    url: str
    graph: DependencyGraph
    registry: ServiceRegistry
    tokens: TokenStore
    router: ServiceRouter
    tracker: HealthTracker

    def add_identity(self, record: PluginRecord, provides: frozenset[str] | None) -> None: ...

    def forget(self, runtime_id: str) -> None: ...


class Platform:
    """Add, remove and replace plugins on a running host."""

    def __init__(self, host: PlatformParts) -> None:
        self._host = host
        self._links: dict[str, _Link] = {}

    def managed(self) -> list[str]:
        """Runtime ids of the plugins this platform added."""
        return list(self._links)

    def startup_order(self) -> list[str]:
        return self._host.graph.startup_order()

    def impact(self, runtime_id: str) -> Impact:
        return self._host.graph.impact(runtime_id)

    async def add_plugin(
        self,
        endpoint: str | ASGIApp,
        *,
        self_id: str = "",
        health_timeout: float = 15.0,
        host_url: str | None = None,
    ) -> str:
        """Take a running plugin under management; its runtime id once it is healthy."""
        host = self._host
        link = _link(endpoint)
        where = endpoint if isinstance(endpoint, str) else "in-memory plugin"
        try:
            info = await link.identity.get_plugin_info(plugininfo_pb2.GetPluginInfoRequest())
        except Exception as exc:
            await link.aclose()
            raise PlatformError(f"cannot get plugin info from {where}: {exc}") from exc
        name = info.self_id or self_id
        if not name:
            await link.aclose()
            raise PlatformError(f"plugin at {where} reports no self_id and none was given")
        for req in info.requires:
            if req.required_for_startup and not host.registry.providers(req.type, req.min_version):
                await link.aclose()
                raise PlatformError(
                    f'required service "{req.type}" not available for plugin "{name}": add a '
                    f"provider of {req.type!r} first, or mark the dependency optional"
                )
        runtime_id = host.tokens.new_runtime_id(name.replace("+", "-"))
        token = generate_token()
        host.tokens.store(runtime_id, token)
        record = _record(runtime_id, info, name, link.upstream.url)
        # Admitted by the operator's add_plugin: it may register what its definition declares.
        host.add_identity(record, record.provided_types)
        log.info(
            "admitted %s by %s", runtime_id,
            Admitted(name, record.provided_types, AdmittedBy.PLATFORM).describe(),
        )  # fmt: skip
        host.router.set_upstream(runtime_id, link.upstream)
        self._links[runtime_id] = link
        try:
            await link.identity.set_runtime_identity(
                plugininfo_pb2.SetRuntimeIdentityRequest(
                    runtime_id=runtime_id,
                    runtime_token=token,
                    host_url=host.url if host_url is None else host_url,
                )
            )
            async with asyncio.timeout(health_timeout):
                await host.tracker.wait_for(runtime_id, (HEALTHY, DEGRADED))
        except Exception as exc:
            self._links.pop(runtime_id, None)
            host.forget(runtime_id)
            await link.aclose()
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise PlatformError(
                f"plugin {name!r} ({runtime_id}) did not become healthy within "
                f"{health_timeout}s: {reason}"
            ) from exc
        log.info("added plugin %s as %s", name, runtime_id)
        return runtime_id

    async def remove_plugin(
        self,
        runtime_id: str,
        *,
        policy: RemovalPolicy = RemovalPolicy.DEGRADE,
        grace: float = 5.0,
        reason: str = "plugin removed",
    ) -> Impact:
        """Remove a plugin; dependents are told (or removed, under ``policy=STOP``)."""
        host = self._host
        if runtime_id not in host.graph and host.registry.store.get_plugin(runtime_id) is None:
            raise PlatformError(f"plugin not found: {runtime_id}")
        impact = host.graph.impact(runtime_id)
        lost = impact.affected_services
        host.registry.unregister_plugin(runtime_id)
        if policy is RemovalPolicy.STOP:
            order = [p for p in host.graph.shutdown_order_safe() if p in impact.affected_plugins]
            for dependent in order:
                await self._retire(dependent, grace, f"required service removed with {runtime_id}")
        else:
            for dependent in impact.affected_plugins:
                node = host.graph.get(dependent)
                needed = {r.type for r in node.requires} if node else set()
                missing = sorted(needed & set(lost)) or lost
                host.tracker.report(
                    dependent, DEGRADED, f"{runtime_id} was removed", unavailable=missing
                )
        await self._retire(runtime_id, grace, reason)
        return impact

    async def replace_plugin(
        self,
        old_id: str,
        endpoint: str | ASGIApp,
        *,
        health_timeout: float = 15.0,
        grace: float = 5.0,
    ) -> str:
        """Blue-green: start serving from ``endpoint``, switch routes, drain and stop ``old_id``."""
        host = self._host
        old = host.registry.store.get_plugin(old_id)
        if old is None:
            raise PlatformError(f"plugin not found: {old_id}")
        new_id = await self.add_plugin(endpoint, self_id=old.self_id, health_timeout=health_timeout)
        new = host.registry.store.get_plugin(new_id)
        missing = old.provided_types - (new.provided_types if new else frozenset())
        if missing:
            await self._retire(new_id, grace, "replacement rejected")
            raise PlatformError(
                f"replacement for {old_id} does not provide {', '.join(sorted(missing))}"
            )
        host.router.switch(old_id, new_id)
        host.registry.unregister_plugin(old_id)
        await self._retire(old_id, grace, "replaced with new version")
        log.info("replaced %s with %s", old_id, new_id)
        return new_id

    async def _retire(self, runtime_id: str, grace: float, reason: str) -> None:
        host = self._host
        host.registry.unregister_plugin(runtime_id)
        try:
            async with asyncio.timeout(grace):
                await host.router.drain(runtime_id)
        except TimeoutError:
            log.warning("%s still had %d calls in flight after %.1fs", runtime_id,
                        host.router.in_flight(runtime_id), grace)  # fmt: skip
        link = self._links.pop(runtime_id, None)
        if link is not None:
            with contextlib.suppress(Exception):
                await link.control.shutdown(
                    lifecycle_pb2.ShutdownRequest(grace_period_seconds=int(grace), reason=reason),
                    timeout_ms=int(grace * 1000) or 1000,
                )
            await link.aclose()
        host.forget(runtime_id)

    async def aclose(self) -> None:
        for link in self._links.values():
            await link.aclose()
        self._links.clear()
