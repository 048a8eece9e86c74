"""The service registry: register, unregister, discover, watch; and its Connect service.

Registration is authorized by what admission granted the runtime id (its join token,
launch secret, client certificate or allow-list entry; for a platform-managed plugin,
what the operator added), kept in the store per runtime id. A plugin's own declaration
grants nothing. A runtime id with no grant may register nothing, unless the host runs
with open registration (development only), which grants anything.
Watchers get the current state at once, then one event per change (register,
unregister, health change, removal); a watcher that falls far behind is ended
with RESOURCE_EXHAUSTED instead of losing events silently.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.gen.connectplugin.v1 import registry_pb2 as pb
from plugin_di.host.auth import TokenValidator, check_credentials
from plugin_di.host.selection import Selector
from plugin_di.host.store import InMemoryStore, ObservableStore, Registration, RegistryStore
from plugin_di.host.tracker import DEGRADED, HealthReport, HealthTracker
from plugin_di.rpc.validation import (
    SemVer,
    validate_endpoint_path,
    validate_metadata,
    validate_service_type,
    validate_version,
)

WATCH_QUEUE_SIZE = 1024
_CLOSED = object()


def routed_url(service_type: str, provider_id: str) -> str:
    """The host-relative URL through which a provider is called."""
    return f"/services/{service_type}/{provider_id}"


class Watcher:
    """One WatchService subscription: an async iterator of events."""

    def __init__(self, registry: ServiceRegistry, service_type: str) -> None:
        self.service_type = service_type
        self._registry = registry
        self._queue: asyncio.Queue[object] = asyncio.Queue(WATCH_QUEUE_SIZE)
        self._overflowed = False

    def push(self, event: pb.WatchServiceEvent) -> None:
        if self._overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._overflowed = True
            self._queue = asyncio.Queue(1)
            self._queue.put_nowait(_CLOSED)

    def close(self) -> None:
        self._registry._watchers.get(self.service_type, set()).discard(self)

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> pb.WatchServiceEvent:
        item = await self._queue.get()
        if item is _CLOSED:
            self.close()
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"watch on {self.service_type!r} fell more than {WATCH_QUEUE_SIZE} events "
                "behind; watch again to get the current state",
            )
        assert isinstance(item, pb.WatchServiceEvent)
        return item


class ServiceRegistry:
    """Registry logic over a store, a health tracker and a selector."""

    def __init__(
        self,
        store: RegistryStore | None = None,
        tracker: HealthTracker | None = None,
        selector: Selector | None = None,
        clock: Clock = SYSTEM_CLOCK,
        *,
        open_registration: bool = False,
    ) -> None:
        self.store: RegistryStore = store if store is not None else InMemoryStore()
        self.tracker = tracker if tracker is not None else HealthTracker()
        self.selector = selector if selector is not None else Selector()
        self.open_registration = open_registration
        self._clock = clock
        self._watchers: dict[str, set[Watcher]] = {}
        self.tracker.add_listener(self._on_health)
        if isinstance(self.store, ObservableStore):
            self.store.subscribe(self._publish)

    # -- authorization ------------------------------------------------------------------
    def set_allowed_services(self, runtime_id: str, types: Iterable[str] | None) -> None:
        """The service types ``runtime_id`` may register (None removes the grant; empty
        denies every type)."""
        self.store.set_allowed(runtime_id, None if types is None else frozenset(types))

    def _authorize(self, runtime_id: str, service_type: str) -> None:
        allowed = self.store.allowed(runtime_id)
        if allowed is None:
            if self.open_registration:
                return
            allowed = frozenset()
        if service_type not in allowed:
            listed = ", ".join(sorted(allowed)) or "nothing"
            raise ConnectError(
                Code.PERMISSION_DENIED,
                f"plugin {runtime_id} is not authorized to register service type "
                f"{service_type!r} (its admission grants: {listed}); the operator grants "
                "types with the join token's --provides, an --allow or --allow-cert entry, "
                "or the plugin's definition when the app launches it",
            )

    # -- mutations -----------------------------------------------------------------------
    def register(
        self,
        runtime_id: str,
        service_type: str,
        version: str,
        endpoint_path: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Registration:
        """Validate, authorize, store, and tell the type's watchers."""
        metadata = dict(metadata or {})
        validate_service_type(service_type)
        validate_version(version)
        validate_endpoint_path(endpoint_path)
        validate_metadata(metadata)
        self._authorize(runtime_id, service_type)
        registration = Registration(
            registration_id="reg-" + secrets.token_hex(8),
            runtime_id=runtime_id,
            service_type=service_type,
            version=version,
            endpoint_path=endpoint_path,
            metadata=metadata,
            registered_at=self._clock.now(),
        )
        self.store.add_registration(registration)
        self._publish(service_type)
        return registration

    def unregister(self, runtime_id: str, registration_id: str) -> Registration:
        """Remove a registration the caller owns."""
        registration = self.store.get_registration(registration_id)
        if registration is None:
            raise ConnectError(Code.NOT_FOUND, f"no registration {registration_id!r}")
        if registration.runtime_id != runtime_id:
            raise ConnectError(
                Code.PERMISSION_DENIED,
                f"registration {registration_id!r} belongs to another plugin; only its owner "
                "may unregister it",
            )
        self.store.remove_registration(registration_id)
        self._publish(registration.service_type)
        return registration

    def unregister_plugin(self, runtime_id: str) -> list[Registration]:
        """Remove every registration of a plugin (host side) and tell the watchers."""
        removed = list(self.store.registrations_of(runtime_id))
        for registration in removed:
            self.store.remove_registration(registration.registration_id)
        for service_type in dict.fromkeys(r.service_type for r in removed):
            self._publish(service_type)
        return removed

    # -- queries -------------------------------------------------------------------------
    def providers(self, service_type: str, min_version: str = "") -> list[Registration]:
        """Registrations of a type that are routable and at least ``min_version``."""
        minimum = SemVer.parse(min_version, "min_version") if min_version else None
        found = []
        for registration in self.store.registrations(service_type):
            if not self.tracker.routable(registration.runtime_id):
                continue
            if minimum is not None and SemVer.parse(registration.version) < minimum:
                continue
            found.append(registration)
        return found

    def discover(self, service_type: str, min_version: str = "") -> tuple[Registration, bool]:
        """One provider per the selection strategy, and whether it is the only registered one."""
        registered = self.store.registrations(service_type)
        if not registered:
            raise ConnectError(Code.NOT_FOUND, f"no providers for service {service_type!r}")
        candidates = self.providers(service_type, min_version)
        if not candidates:
            compatible = (
                self.store.registrations(service_type)
                if not min_version
                else [
                    r
                    for r in registered
                    if SemVer.parse(r.version) >= SemVer.parse(min_version, "min_version")
                ]
            )
            if not compatible:
                raise ConnectError(
                    Code.NOT_FOUND,
                    f"no compatible providers for service {service_type!r} "
                    f"(min version: {min_version})",
                )
            raise ConnectError(
                Code.NOT_FOUND,
                f"no available providers for service {service_type!r} (all unhealthy)",
            )
        return self.selector.select(service_type, candidates), len(registered) == 1

    def registration_of(self, runtime_id: str, service_type: str) -> Registration | None:
        """The registration of ``service_type`` by ``runtime_id``, if any."""
        for registration in self.store.registrations(service_type):
            if registration.runtime_id == runtime_id:
                return registration
        return None

    def endpoint(self, registration: Registration) -> pb.ServiceEndpoint:
        """The wire form of a provider: routed URL, version, metadata."""
        return pb.ServiceEndpoint(
            provider_id=registration.runtime_id,
            version=registration.version,
            endpoint_url=routed_url(registration.service_type, registration.runtime_id),
            metadata=dict(registration.metadata),
        )

    def state(self, service_type: str) -> pb.WatchServiceEvent:
        """The current state of a type, as a watch event."""
        available = self.providers(service_type)
        event = pb.WatchServiceEvent(service_type=service_type)
        if not available:
            event.state = pb.SERVICE_STATE_UNAVAILABLE
            return event
        healthy = [r for r in available if not self._degraded(r.runtime_id)]
        chosen = (healthy or available)[0]
        event.state = pb.SERVICE_STATE_AVAILABLE if healthy else pb.SERVICE_STATE_DEGRADED
        event.endpoint.CopyFrom(self.endpoint(chosen))
        return event

    def _degraded(self, runtime_id: str) -> bool:
        report = self.tracker.get(runtime_id)
        return report is not None and report.state == DEGRADED

    # -- watching ------------------------------------------------------------------------
    def watch(self, service_type: str) -> Watcher:
        """Subscribe to a type; the first event (the current state) is already queued."""
        watcher = Watcher(self, service_type)
        watcher.push(self.state(service_type))
        self._watchers.setdefault(service_type, set()).add(watcher)
        return watcher

    def watcher_count(self, service_type: str) -> int:
        return len(self._watchers.get(service_type, ()))

    def _publish(self, service_type: str) -> None:
        watchers = self._watchers.get(service_type)
        if not watchers:
            return
        event = self.state(service_type)
        for watcher in list(watchers):
            watcher.push(event)

    def _on_health(
        self, runtime_id: str, old: HealthReport | None, new: HealthReport | None
    ) -> None:
        if old is not None and new is not None and old.state == new.state:
            return
        types = {r.service_type for r in self.store.registrations_of(runtime_id)}
        for service_type in sorted(types):
            self._publish(service_type)


class RegistryService:
    """The ``connectplugin.v1.ServiceRegistry`` Connect service (every RPC authenticated)."""

    def __init__(self, registry: ServiceRegistry, tokens: TokenValidator) -> None:
        self._registry = registry
        self._tokens = tokens

    def _caller(self, ctx: RequestContext[object, object]) -> str:
        return check_credentials(ctx.request_headers.get, self._tokens)

    async def register_service(
        self,
        request: pb.RegisterServiceRequest,
        ctx: RequestContext[pb.RegisterServiceRequest, pb.RegisterServiceResponse],
    ) -> pb.RegisterServiceResponse:
        caller = self._caller(ctx)  # type: ignore[arg-type]
        registration = self._registry.register(
            caller, request.service_type, request.version, request.endpoint_path, request.metadata
        )
        return pb.RegisterServiceResponse(registration_id=registration.registration_id)

    async def unregister_service(
        self,
        request: pb.UnregisterServiceRequest,
        ctx: RequestContext[pb.UnregisterServiceRequest, pb.UnregisterServiceResponse],
    ) -> pb.UnregisterServiceResponse:
        caller = self._caller(ctx)  # type: ignore[arg-type]
        self._registry.unregister(caller, request.registration_id)
        return pb.UnregisterServiceResponse()

    async def discover_service(
        self,
        request: pb.DiscoverServiceRequest,
        ctx: RequestContext[pb.DiscoverServiceRequest, pb.DiscoverServiceResponse],
    ) -> pb.DiscoverServiceResponse:
        self._caller(ctx)  # type: ignore[arg-type]
        validate_service_type(request.service_type)
        if request.min_version:
            validate_version(request.min_version, "min_version")
        registration, single = self._registry.discover(request.service_type, request.min_version)
        return pb.DiscoverServiceResponse(
            endpoint=self._registry.endpoint(registration), single_provider=single
        )

    async def watch_service(
        self,
        request: pb.WatchServiceRequest,
        ctx: RequestContext[pb.WatchServiceRequest, pb.WatchServiceEvent],
    ) -> AsyncIterator[pb.WatchServiceEvent]:
        self._caller(ctx)  # type: ignore[arg-type]
        validate_service_type(request.service_type)
        watcher = self._registry.watch(request.service_type)
        try:
            async for event in watcher:
                yield event
        finally:
            watcher.close()
