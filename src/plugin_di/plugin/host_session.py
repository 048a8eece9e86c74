"""A plugin's membership in the host platform: registration, discovery, health.

``HostSession`` does what every plugin on a host needs: register the services it
provides, watch the services it requires, and report HEALTHY or DEGRADED with
the missing dependencies, again on every change, so a plugin that started
before its dependency recovers by itself when a provider appears. Its upkeep
(heartbeats, failover, rejoining) is `plugin_di.plugin.keepalive`'s.

A session starts in one of two ways: ``self_register`` (the plugin handshakes with a
host it was pointed at) or ``managed_session`` / ``follow_identity`` (the host that
launched the plugin hands it an identity). The RPC client underneath is
`plugin_di.plugin.host_client.HostClient`; joining a *serving* plugin to a host is
`plugin_di.plugin.host_membership`.

Plugin layer: imports only rpc and generated code (no host, networkx or pydantic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyqwest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.plugin.definition import Dependency, PluginsLike, as_plugin_set
from plugin_di.plugin.host_client import (
    DEGRADED,
    HEALTHY,
    ClientT,
    HostClient,
    HostClientError,
)
from plugin_di.plugin.identity import IdentityStore, RuntimeIdentity
from plugin_di.plugin.keepalive import Backoff, Keepalive, Rejoin, split_urls

__all__ = [
    "HostSession",
    "OnReport",
    "OnSession",
    "follow_identity",
    "managed_session",
    "self_register",
]

log = logging.getLogger(__name__)

OnReport = Callable[[int, str, Sequence[str]], None]
OnSession = Callable[["HostSession"], None]


@dataclass
class _DependencyState:
    dependency: Dependency
    endpoint: registry_pb2.ServiceEndpoint | None = None


class HostSession:
    """Registers a plugin's services, watches its dependencies, and keeps its health reported.

    The reported reason names the provider used for each dependency
    (``ready: logger from logger-1a2b``), so the host and the plugin's own
    health service show what was discovered.
    """

    def __init__(
        self,
        client: HostClient,
        plugins: PluginsLike,
        *,
        base_url: str = "",
        on_report: OnReport | None = None,
        urls: Sequence[str] = (),
        rejoin: Rejoin | None = None,
        heartbeat: float | None = None,
    ) -> None:
        """``urls``: every host this plugin may use (it fails over among them);
        ``rejoin``: handshake again when a host no longer knows the identity;
        ``heartbeat``: seconds between heartbeats (default: from the host's lease)."""
        self.client = client
        self.plugins = list(as_plugin_set(plugins).values())
        self.base_url = base_url
        self._on_report = on_report
        self.registrations: list[str] = []
        self.dependencies = {d.type: _DependencyState(d) for p in self.plugins for d in p.requires}
        self.state: int = 0
        self.reason = ""
        self.unavailable: tuple[str, ...] = ()
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False
        self.keepalive = Keepalive(self, urls=urls, rejoin=rejoin, interval=heartbeat)

    async def register_all(self) -> None:
        """Register every provided service (again, after joining anew) and report health."""
        metadata = {"base_url": self.base_url} if self.base_url else {}
        registrations = []
        for plugin in self.plugins:
            for service in plugin.services:
                registrations.append(
                    await self.client.register(
                        service.service_type, service.version, service.path + "/", metadata
                    )
                )
        self.registrations = registrations
        if self.state:
            self.state = 0  # a new identity has no health yet: report it
            await self._report()

    async def start(self) -> None:
        """Register every provided service, start watching, report health, and keep the
        membership alive (heartbeats, failover, rejoin)."""
        await self.register_all()
        ready = [asyncio.Event() for _ in self.dependencies]
        for state, first in zip(self.dependencies.values(), ready, strict=True):
            self._tasks.append(asyncio.create_task(self._watch(state, first)))
        try:
            if ready:
                await asyncio.wait([asyncio.create_task(e.wait()) for e in ready])
            await self._report()
        except BaseException:
            # Cancelled or refused while starting: no watch may outlive the session.
            await self._cancel_watches()
            raise
        self.keepalive.start()

    async def heartbeat(self) -> None:
        """Report the current health again (keeps the lease; fails when the host is gone)."""
        if not self.state:
            await self._report()
            return
        await self.client.report_health(self.state, self.reason, self.unavailable)

    async def use_host(self, host_url: str) -> None:
        """Move to another host of the same platform, keeping the identity."""
        old = self.client
        client = HostClient(host_url, identity=old.identity)
        client.lease_ttl = old.lease_ttl
        self.client = client
        await old.close()

    async def _watch(self, state: _DependencyState, first: asyncio.Event) -> None:
        dep = state.dependency
        while True:
            try:
                async for event in self.client.watch(dep.type):
                    usable = event.state in (
                        registry_pb2.SERVICE_STATE_AVAILABLE,
                        registry_pb2.SERVICE_STATE_DEGRADED,
                    )
                    if usable and dep.min_version:
                        try:
                            found = await self.client.discover(dep.type, dep.min_version)
                            state.endpoint = found.endpoint
                        except ConnectError:
                            state.endpoint = None
                    else:
                        state.endpoint = event.endpoint if usable else None
                    if first.is_set():
                        await self._report()
                    first.set()
            except ConnectError as error:
                # connectrpc turns the task's cancellation into ConnectError(CANCELED)
                if self._stopping or error.code is Code.CANCELED:
                    return
                self.keepalive.alarm()
                if error.code in (Code.UNAUTHENTICATED, Code.PERMISSION_DENIED):
                    if self.keepalive.rejoin is None:
                        log.error("watching %s: %s", dep.type, error.message)
                        first.set()
                        return
                    log.warning("watching %s: %s; waiting to join again", dep.type,
                                error.message)  # fmt: skip
                else:
                    log.warning("watch on %s ended (%s); watching again", dep.type, error.message)
            first.set()
            if self._stopping:
                return
            await asyncio.sleep(0.2)

    async def _report(self) -> None:
        async with self._lock:
            missing = tuple(sorted(t for t, s in self.dependencies.items() if s.endpoint is None))
            required_missing = [
                t for t in missing if self.dependencies[t].dependency.required_for_startup
            ]
            state = DEGRADED if required_missing else HEALTHY
            used = [
                f"{t} from {s.endpoint.provider_id}"
                for t, s in sorted(self.dependencies.items())
                if s.endpoint is not None
            ]
            if required_missing:
                reason = f"waiting for {', '.join(required_missing)}"
            else:
                reason = "ready" + (f": {', '.join(used)}" if used else "")
            if (state, reason, missing) == (self.state, self.reason, self.unavailable):
                return
            await self.client.report_health(state, reason, missing)
            self.state, self.reason, self.unavailable = state, reason, missing
            if self._on_report is not None:
                self._on_report(state, reason, missing)
            self._changed.set()
            self._changed = asyncio.Event()

    def endpoint(self, service_type: str) -> registry_pb2.ServiceEndpoint | None:
        """The provider currently used for a dependency, or None."""
        state = self.dependencies.get(service_type)
        return state.endpoint if state else None

    def routed_client(self, client_class: type[ClientT], service_type: str) -> ClientT | None:
        """A typed client for the current provider of a dependency, through the router."""
        endpoint = self.endpoint(service_type)
        return None if endpoint is None else self.client.routed_client(client_class, endpoint)

    async def wait_state(self, state: int) -> None:
        """Wait until this session has reported ``state`` (bound it with asyncio.timeout)."""
        while self.state != state:
            await self._changed.wait()

    async def _cancel_watches(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def stop(self) -> None:
        """Stop watching and unregister (errors ignored: the host may be gone)."""
        self._stopping = True
        await self.keepalive.stop()
        await self._cancel_watches()
        for registration in self.registrations:
            with contextlib.suppress(ConnectError, HostClientError):
                await self.client.unregister(registration)
        self.registrations.clear()


async def _started(session: HostSession, on_session: OnSession | None) -> HostSession:
    if on_session is not None:
        on_session(session)  # before start: the plugin sees each endpoint as soon as it is known
    await session.start()
    return session


async def managed_session(
    identity: RuntimeIdentity,
    plugins: PluginsLike,
    *,
    http_client: pyqwest.Client | None = None,
    on_report: OnReport | None = None,
    on_session: OnSession | None = None,
) -> HostSession:
    """Platform-managed: start a session with the identity the host handed over.

    ``on_session`` receives the session before it starts (registering, watching).
    """
    if not identity.host_url:
        raise HostClientError("the host handed over an identity without host_url")
    client = HostClient(identity.host_url, http_client=http_client, identity=identity)
    session = HostSession(client, plugins, on_report=on_report)
    return await _started(session, on_session)


async def follow_identity(
    store: IdentityStore,
    plugins: PluginsLike,
    *,
    http_client: pyqwest.Client | None = None,
    on_report: OnReport | None = None,
    on_session: OnSession | None = None,
) -> HostSession:
    """Wait for the host to hand over an identity (SetRuntimeIdentity), then start a session."""
    identity = await store.wait()
    return await managed_session(
        identity, plugins, http_client=http_client, on_report=on_report, on_session=on_session
    )


_REFUSED = (Code.UNAUTHENTICATED, Code.PERMISSION_DENIED, Code.INVALID_ARGUMENT,
            Code.FAILED_PRECONDITION, Code.NOT_FOUND, Code.UNIMPLEMENTED)  # fmt: skip


async def self_register(
    host_url: str | Sequence[str],
    plugins: PluginsLike,
    *,
    base_url: str,
    http_client: pyqwest.Client | None = None,
    on_report: OnReport | None = None,
    on_session: OnSession | None = None,
    join_token: str = "",
    heartbeat: float | None = None,
    attempts: int | None = None,
) -> HostSession:
    """Self-registering: handshake with a host (admitted by ``join_token`` when given),
    then start a session.

    ``host_url`` is one URL or several (a list, or comma-separated): the first that answers
    is joined, the others are where the plugin fails over to. A host that cannot be reached
    is retried with backoff (``attempts`` bounds the tries; None: until it answers); a
    refusal (admission, versions) ends the attempt at once.
    """
    listed = list(as_plugin_set(plugins).values())
    urls = split_urls(host_url)
    if not urls:
        raise HostClientError("no host URL to join")

    async def handshake(client: HostClient) -> None:
        await client.handshake(
            "-".join(p.name for p in listed),
            plugins=listed,
            base_url=base_url,
            self_version=listed[0].version,
            join_token=join_token,
        )

    backoff = Backoff()
    tried = 0
    while True:
        url = urls[tried % len(urls)]
        client = HostClient(url, http_client=http_client)
        tried += 1
        try:
            await handshake(client)
            break
        except (ConnectError, OSError) as error:
            await client.close()
            code = error.code if isinstance(error, ConnectError) else Code.UNAVAILABLE
            if code in _REFUSED or (attempts is not None and tried >= attempts):
                raise
            log.warning("joining the host at %s failed: %s; retrying with backoff", url,
                        getattr(error, "message", error))  # fmt: skip
        except BaseException:
            await client.close()
            raise
        await backoff.wait()
    session = HostSession(
        client,
        listed,
        base_url=base_url,
        on_report=on_report,
        urls=urls,
        rejoin=handshake,
        heartbeat=heartbeat,
    )
    return await _started(session, on_session)
