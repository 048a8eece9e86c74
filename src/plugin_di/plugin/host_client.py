"""The plugin side of the host platform: identity, registration, discovery, health.

``HostClient`` speaks to a host: a handshake with ``self_id`` (self-registering)
or an identity the host handed over (platform-managed), then every call carries
``Authorization: Bearer <token>`` and ``X-Plugin-Runtime-ID``.

``HostSession`` does what every plugin on a host needs: register the services it
provides, watch the services it requires, and report HEALTHY or DEGRADED with
the missing dependencies, again on every change, so a plugin that started
before its dependency recovers by itself when a provider appears.

Plugin layer: imports only rpc and generated code (no host, networkx or pydantic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pyqwest
from connectrpc.client import ConnectClient
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.gen.connectplugin.v1 import broker_pb2, handshake_pb2, lifecycle_pb2, registry_pb2
from plugin_di.gen.connectplugin.v1.broker_connect import CapabilityBrokerClient
from plugin_di.gen.connectplugin.v1.handshake_connect import HandshakeServiceClient
from plugin_di.gen.connectplugin.v1.lifecycle_connect import PluginLifecycleClient
from plugin_di.gen.connectplugin.v1.registry_connect import ServiceRegistryClient
from plugin_di.plugin import env
from plugin_di.plugin.definition import Dependency, Plugin
from plugin_di.plugin.identity import IdentityStore, RuntimeIdentity

log = logging.getLogger(__name__)

ClientT = TypeVar("ClientT", bound=ConnectClient)

PROVIDES_KEY = "plugin-di.provides"
REQUIRES_KEY = "plugin-di.requires"
BASE_URL_KEY = "plugin-di.base-url"

HEALTHY = lifecycle_pb2.HEALTH_STATE_HEALTHY
DEGRADED = lifecycle_pb2.HEALTH_STATE_DEGRADED
UNHEALTHY = lifecycle_pb2.HEALTH_STATE_UNHEALTHY

_NO_COMPRESSION: dict[str, Any] = {"send_compression": None, "accept_compression": []}


class HostClientError(Exception):
    """The plugin has no identity yet, or the host refused it."""


class BearerAuth:
    """Client interceptor adding a runtime identity's headers to every call."""

    def __init__(self, identity: Callable[[], RuntimeIdentity | None]) -> None:
        self._identity = identity

    def _stamp(self, ctx: RequestContext[Any, Any]) -> None:
        identity = self._identity()
        if identity is None:
            raise HostClientError("no runtime identity yet: handshake with the host first")
        if identity.runtime_token:
            ctx.request_headers["authorization"] = f"Bearer {identity.runtime_token}"
        if identity.runtime_id:
            ctx.request_headers["x-plugin-runtime-id"] = identity.runtime_id

    async def intercept_unary(
        self, call_next: Callable[[Any, Any], Awaitable[Any]], request: Any, ctx: Any
    ) -> Any:
        self._stamp(ctx)
        return await call_next(request, ctx)

    async def intercept_server_stream(
        self, call_next: Callable[[Any, Any], AsyncIterator[Any]], request: Any, ctx: Any
    ) -> AsyncIterator[Any]:
        self._stamp(ctx)
        async for message in call_next(request, ctx):
            yield message


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
    metadata = {PROVIDES_KEY: ",".join(provides), REQUIRES_KEY: ",".join(requires)}
    if base_url:
        metadata[BASE_URL_KEY] = base_url
    return metadata


class HostClient:
    """Calls from a plugin to the host platform."""

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
        self._cookie = (magic_cookie_key, magic_cookie_value)
        self._transport: pyqwest.HTTPTransport | None = None
        if http_client is None:
            self._transport = pyqwest.HTTPTransport(http_version=pyqwest.HTTPVersion.HTTP2)
            http_client = pyqwest.Client(self._transport)
        self.http_client = http_client
        self.auth = BearerAuth(lambda: self.identity)
        common: dict[str, Any] = {"http_client": http_client, **_NO_COMPRESSION}
        self._handshake = HandshakeServiceClient(self.host_url, **common)
        authed: dict[str, Any] = {**common, "interceptors": [self.auth]}
        self.registry = ServiceRegistryClient(self.host_url, **authed)
        self.lifecycle = PluginLifecycleClient(self.host_url, **authed)
        self.broker = CapabilityBrokerClient(self.host_url, **authed)

    async def handshake(
        self,
        self_id: str,
        *,
        plugins: Sequence[Plugin] = (),
        base_url: str = "",
        self_version: str = "",
        app_versions: Sequence[int] = (1,),
    ) -> RuntimeIdentity:
        """Self-register: get a runtime identity, declaring what ``plugins`` provide."""
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
            )
        )
        if not response.runtime_id or not response.runtime_token:
            raise HostClientError(f"host at {self.host_url} issued no runtime identity")
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
        return client_class(
            self.host_url + endpoint.endpoint_url,
            http_client=self.http_client,
            interceptors=[self.auth],
            **_NO_COMPRESSION,
        )

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None
            await asyncio.sleep(0.05)  # pyqwest's tokio threads settle before the loop ends


@dataclass
class _DependencyState:
    dependency: Dependency
    endpoint: registry_pb2.ServiceEndpoint | None = None


class HostSession:
    """Registers a plugin's services, watches its dependencies, and keeps its health reported."""

    def __init__(
        self,
        client: HostClient,
        plugins: Plugin | Sequence[Plugin],
        *,
        base_url: str = "",
        on_report: Callable[[int, str, Sequence[str]], None] | None = None,
    ) -> None:
        self.client = client
        self.plugins = [plugins] if isinstance(plugins, Plugin) else list(plugins)
        self.base_url = base_url
        self._on_report = on_report
        self.registrations: list[str] = []
        self.dependencies = {d.type: _DependencyState(d) for p in self.plugins for d in p.requires}
        self.state: int = 0
        self.unavailable: tuple[str, ...] = ()
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False

    async def start(self) -> None:
        """Register every provided service, start watching, and report health."""
        metadata = {"base_url": self.base_url} if self.base_url else {}
        for plugin in self.plugins:
            for service in plugin.services:
                self.registrations.append(
                    await self.client.register(
                        service.service_type, service.version, service.path + "/", metadata
                    )
                )
        ready = [asyncio.Event() for _ in self.dependencies]
        for state, first in zip(self.dependencies.values(), ready, strict=True):
            self._tasks.append(asyncio.create_task(self._watch(state, first)))
        if ready:
            await asyncio.wait([asyncio.create_task(e.wait()) for e in ready])
        await self._report()

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
                if error.code in (Code.UNAUTHENTICATED, Code.PERMISSION_DENIED):
                    log.error("watching %s: %s", dep.type, error.message)
                    first.set()
                    return
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
            reason = f"waiting for {', '.join(required_missing)}" if required_missing else "ready"
            if (state, missing) == (self.state, self.unavailable):
                return
            await self.client.report_health(state, reason, missing)
            self.state, self.unavailable = state, missing
            if self._on_report is not None:
                self._on_report(state, reason, missing)
            self._changed.set()
            self._changed = asyncio.Event()

    def endpoint(self, service_type: str) -> registry_pb2.ServiceEndpoint | None:
        """The provider currently used for a dependency, or None."""
        state = self.dependencies.get(service_type)
        return state.endpoint if state else None

    async def wait_state(self, state: int) -> None:
        """Wait until this session has reported ``state`` (bound it with asyncio.timeout)."""
        while self.state != state:
            await self._changed.wait()

    async def stop(self) -> None:
        """Stop watching and unregister (errors ignored: the host may be gone)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for registration in self.registrations:
            with contextlib.suppress(ConnectError, HostClientError):
                await self.client.unregister(registration)
        self.registrations.clear()


async def managed_session(
    identity: RuntimeIdentity,
    plugins: Plugin | Sequence[Plugin],
    *,
    http_client: pyqwest.Client | None = None,
    on_report: Callable[[int, str, Sequence[str]], None] | None = None,
) -> HostSession:
    """Platform-managed: start a session with the identity the host handed over."""
    if not identity.host_url:
        raise HostClientError("the host handed over an identity without host_url")
    client = HostClient(identity.host_url, http_client=http_client, identity=identity)
    session = HostSession(client, plugins, on_report=on_report)
    await session.start()
    return session


async def follow_identity(
    store: IdentityStore,
    plugins: Plugin | Sequence[Plugin],
    *,
    http_client: pyqwest.Client | None = None,
    on_report: Callable[[int, str, Sequence[str]], None] | None = None,
) -> HostSession:
    """Wait for the host to hand over an identity (SetRuntimeIdentity), then start a session."""
    identity = await store.wait()
    return await managed_session(identity, plugins, http_client=http_client, on_report=on_report)


async def self_register(
    host_url: str,
    plugins: Plugin | Sequence[Plugin],
    *,
    base_url: str,
    http_client: pyqwest.Client | None = None,
    on_report: Callable[[int, str, Sequence[str]], None] | None = None,
) -> HostSession:
    """Self-registering: handshake with the host at ``host_url``, then start a session."""
    listed = [plugins] if isinstance(plugins, Plugin) else list(plugins)
    client = HostClient(host_url, http_client=http_client)
    await client.handshake(
        "-".join(p.name for p in listed),
        plugins=listed,
        base_url=base_url,
        self_version=listed[0].version,
    )
    session = HostSession(client, listed, base_url=base_url, on_report=on_report)
    await session.start()
    return session


class _Served(Protocol):
    identity: IdentityStore
    health: Any


_sessions: set[asyncio.Task[HostSession]] = set()


def join_host(
    plugins: Plugin | Sequence[Plugin],
    *,
    environ: Mapping[str, str] | None = None,
    on_session: Callable[[HostSession], None] | None = None,
) -> Callable[[Any, Any], None]:
    """An ``on_ready`` hook for ``serve``: join the host platform once serving.

    With ``PLUGIN_DI_HOST_URL`` set the plugin self-registers there; otherwise it
    waits for a host to hand it an identity (platform-managed). Either way its
    services are registered, its dependencies watched, and its health (also the
    plugin's own health services) follows what it reports.
    """
    source = os.environ if environ is None else environ

    def on_ready(server: _Served, line: Any) -> None:
        from plugin_di.plugin.health import HealthState

        def mirror(state: int, reason: str, missing: Sequence[str]) -> None:
            server.health.report(HealthState(state), reason, missing)

        host_url = source.get(env.HOST_URL, "")
        if host_url:
            coro = self_register(host_url, plugins, base_url=line.url, on_report=mirror)
        else:
            coro = follow_identity(server.identity, plugins, on_report=mirror)
        task = asyncio.get_running_loop().create_task(coro)
        _sessions.add(task)

        def done(finished: asyncio.Task[HostSession]) -> None:
            _sessions.discard(finished)
            if finished.cancelled():
                return
            error = finished.exception()
            if error is not None:
                log.error("joining the host failed: %s", error)
            elif on_session is not None:
                on_session(finished.result())

        task.add_done_callback(done)

    return on_ready


def serve_on_host(
    plugins: Plugin | Sequence[Plugin],
    *,
    on_session: Callable[[HostSession], None] | None = None,
    **serve_kwargs: Any,
) -> int:
    """Like ``plugin_di.plugin.server.serve``, and join the host platform once serving.

    Self-registers with ``PLUGIN_DI_HOST_URL`` when it is set, else waits to be
    managed by the host that launched it. Returns the process exit code.
    """
    from plugin_di.plugin.server import serve_async

    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # stdout carries only the handshake line
    sessions: list[HostSession] = []

    def joined(session: HostSession) -> None:
        sessions.append(session)
        if on_session is not None:
            on_session(session)

    async def main() -> int:
        hook = join_host(plugins, on_session=joined)
        code = await serve_async(plugins, stdout=real_stdout, on_ready=hook, **serve_kwargs)
        for session in sessions:  # leave the host: dependents see the services go
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await session.stop()
            await session.client.close()
        return code

    try:
        return asyncio.run(main())
    finally:
        sys.stdout = real_stdout
