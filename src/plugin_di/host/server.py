"""The Host: every host-platform part wired together with shared token state, and served.

One ASGI app serves HandshakeService, ServiceRegistry, PluginLifecycle,
CapabilityBroker, grpc.health.v1, gRPC reflection, the router at
``/services/``, capability endpoints at ``/capabilities/`` and the plain HTTP probes
``/healthz`` and ``/readyz`` (`plugin_di.host.probes`). In-memory
plugins reach it with no socket through ``in_memory_client()``.

One server serves it at ``url`` and, with a local channel, at ``local_url``
(`plugin_di.host.listeners`). Its tunables are a `HostConfig`; admission, the store and the
clock are its collaborators.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import pyqwest
from pyqwest.testing import ASGITransport

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.gen.connectplugin.v1.broker_connect import (
    CapabilityBrokerASGIApplication,
    CapabilityBrokerClient,
)
from plugin_di.gen.connectplugin.v1.handshake_connect import (
    HandshakeServiceASGIApplication,
    HandshakeServiceClient,
)
from plugin_di.gen.connectplugin.v1.lifecycle_connect import (
    PluginLifecycleASGIApplication,
    PluginLifecycleClient,
)
from plugin_di.gen.connectplugin.v1.registry_connect import (
    ServiceRegistryASGIApplication,
    ServiceRegistryClient,
)
from plugin_di.gen.grpc.health.v1.health_connect import HealthASGIApplication, HealthClient
from plugin_di.host.admission import Admission, AdmissionPolicy
from plugin_di.host.broker import CAPABILITIES_PREFIX, BrokerService, CapabilityBroker
from plugin_di.host.config import HostConfig
from plugin_di.host.depgraph import DependencyGraph, Node
from plugin_di.host.handshake import HandshakeService
from plugin_di.host.inspect import INSPECT_PREFIX, PlatformInspector
from plugin_di.host.listeners import HostListeners
from plugin_di.host.platform import Platform
from plugin_di.host.probes import HostProbes
from plugin_di.host.registry import RegistryService, ServiceRegistry
from plugin_di.host.router import SERVICES_PREFIX, ServiceRouter
from plugin_di.host.shared.config import StoreConfig
from plugin_di.host.store import PluginRecord, RegistryStore
from plugin_di.host.tokens import TokenStore
from plugin_di.host.tracker import HealthTracker, LifecycleService
from plugin_di.plugin.definition import Plugin, service_descriptor
from plugin_di.plugin.env import LEASE_TTL_KEY
from plugin_di.plugin.health import GrpcHealthService, Health
from plugin_di.plugin.reflection import reflection_apps
from plugin_di.rpc.asgi import ASGIApp, ServiceMux
from plugin_di.rpc.errors import SanitizeErrors
from plugin_di.rpc.interceptors.ratelimit import (
    RateLimitInterceptor,
    TokenBucketLimiter,
    default_rate_limit_key,
    host_rate_limits,
)
from plugin_di.settings import Settings

if TYPE_CHECKING:
    from plugin_di.host.shared import SharedPlatform

log = logging.getLogger(__name__)

IN_MEMORY_URL = "http://in-memory.host"
_Path = str | os.PathLike[str]

_HOST_CLIENTS = (
    HandshakeServiceClient,
    ServiceRegistryClient,
    PluginLifecycleClient,
    CapabilityBrokerClient,
    HealthClient,
)


def _shared(store: RegistryStore | StoreConfig | None, token_ttl: float,
            host: Host) -> SharedPlatform | None:  # fmt: skip
    if not isinstance(store, StoreConfig) or not store.shared:
        return None
    from plugin_di.host.shared import SharedPlatform

    return SharedPlatform(store, runtime_token_ttl=token_ttl, managed=host.platform_managed)


def _admission(admission: AdmissionPolicy | Admission | None) -> Admission:
    if isinstance(admission, Admission):
        return admission
    return Admission(admission if admission is not None else AdmissionPolicy())


class Host:
    """The host platform. ``await start()`` serves it; ``app`` is the ASGI app itself."""

    def __init__(
        self,
        config: HostConfig | None = None,
        *,
        admission: AdmissionPolicy | Admission | None = None,
        store: RegistryStore | StoreConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
        bind: str | None = None,
        certfile: _Path | None = None,
        keyfile: _Path | None = None,
        local_uds: bool = False,
        local_bind: str | None = None,
        fast_uds: bool = False,
        fast_bind: str | None = None,
    ) -> None:
        """``config`` holds the tunables (`HostConfig`; `from_settings` builds it from the
        environment).

        ``admission`` (`AdmissionPolicy`, or an `Admission` with its own clock) decides who
        may take a runtime identity and what each may register: join tokens, launch
        secrets, client certificates, an allow-list (docs/security.md). The default admits
        only plugins the app launches with ``ProcessPlugin(host=...)`` and those the
        platform adds; ``AdmissionPolicy(open_registration=True)`` admits anyone, for
        development.

        ``store`` is where the platform's state lives: a `RegistryStore` for the registry
        alone (the in-memory one by default), or a `StoreConfig` (Settings STORE,
        LEASE_TTL): ``redis://...`` puts every part's state (identities, registry,
        health, grants, admissions, rate-limit buckets) in Redis, shared with the other
        hosts on it, each host keeping a replica in memory (docs/deploy.md).

        ``bind`` (e.g. ``127.0.0.1:0``; with ``certfile``/``keyfile``, TLS) takes the socket
        at once, so ``url`` is known before the host starts: plugins built before it
        (``host_url=host.provided.url``) get the real address. Without it, ``start()``
        binds. ``local_uds=True`` also serves the host on a Unix socket (0600, in a private
        0700 directory); ``local_bind`` (``unix:/path`` or ``127.0.0.1:0``) picks the address
        instead. Either is bound at once, so ``local_url`` is known before the host starts:
        give it to local process plugins as their host URL. (``fast_uds``/``fast_bind``,
        ``fast_url`` and ``listen_fast`` are the deprecated names of the same.)
        """
        self.config = config = config if config is not None else HostConfig()
        runtime_token_ttl = config.runtime_token_ttl
        rate_limit = config.rate_limit
        self.clock = clock
        self.shared = shared = _shared(store, runtime_token_ttl, self)
        """The shared platform state, when the store is shared (else None)."""
        self.admission = _admission(admission)
        if shared is not None:
            self.admission.state = shared.admission
            self.tokens: TokenStore = shared.tokens
            self.tracker = HealthTracker(shared.health)
            shared.health.on_change(self.tracker.changed)
            registry_store: RegistryStore | None = shared.registry_store
            grants_clock: Clock = shared.clock  # grant expiry is compared across hosts
        else:
            self.tokens = TokenStore(runtime_token_ttl, clock)
            self.tracker = HealthTracker()
            registry_store = None if isinstance(store, StoreConfig) else store
            grants_clock = clock
        self.registry = ServiceRegistry(
            registry_store,
            self.tracker,
            clock=clock,
            open_registration=self.admission.policy.open_registration,
        )
        self.graph = DependencyGraph()
        self.broker = CapabilityBroker(
            IN_MEMORY_URL,
            ttl=config.capability_grant_ttl,
            clock=grants_clock,
            grants=shared.grants if shared is not None else None,
        )
        self.limiter: TokenBucketLimiter | None = None
        if rate_limit is not None:
            self.limiter = shared.limiter if shared is not None else TokenBucketLimiter(clock)
        self.router = ServiceRouter(
            self.registry, self.tokens, limiter=self.limiter, rate=rate_limit
        )
        self.health = Health()
        self.platform = Platform(self)
        self.url = IN_MEMORY_URL
        interceptors: list[Any] = [SanitizeErrors(log)]
        if rate_limit is not None and self.limiter is not None:
            rate_limits = RateLimitInterceptor(
                host_rate_limits(rate_limit), self.limiter, key=self._rate_key
            )
            interceptors.insert(0, rate_limits)
        if shared is not None:
            from plugin_di.host.shared.commit import CommitWrites

            interceptors.append(CommitWrites(shared.state))
            shared.follow(self.router, self.graph)
        kwargs: dict[str, Any] = {"interceptors": interceptors}
        handshake = HandshakeService(
            self.tokens,
            self.admission,
            on_identity=self.add_identity,
            capabilities=self.broker.capabilities,
            app_versions=config.app_versions,
            server_metadata=(
                {LEASE_TTL_KEY: f"{shared.config.lease_ttl:g}"} if shared is not None else None
            ),
        )
        apps: list[Any] = [
            HandshakeServiceASGIApplication(handshake, **kwargs),
            ServiceRegistryASGIApplication(RegistryService(self.registry, self.tokens), **kwargs),
            PluginLifecycleASGIApplication(LifecycleService(self.tracker, self.tokens), **kwargs),
            CapabilityBrokerASGIApplication(BrokerService(self.broker, self.tokens), **kwargs),
            HealthASGIApplication(GrpcHealthService(self.health), **kwargs),
            *reflection_apps([service_descriptor(c) for c in _HOST_CLIENTS], **kwargs),
        ]
        self.app = ServiceMux(apps, max_message_bytes=config.max_message_bytes)
        self._connect_apps = apps
        self.app.mount(SERVICES_PREFIX, self.router)
        self.app.mount(CAPABILITIES_PREFIX, self.broker)
        inspector = PlatformInspector(self.registry, self.tracker, self.tokens, self.admission,
                                      limiter=self.limiter, rate=rate_limit)  # fmt: skip
        self.app.mount(INSPECT_PREFIX, inspector)
        self._listeners = HostListeners()
        state = shared.state if shared is not None else None
        probes = HostProbes(self.health, lambda: self._listeners.serving,
                            (lambda: state.connected) if state is not None else None)  # fmt: skip
        self.app.mount("/healthz", probes)
        self.app.mount("/readyz", probes)
        self._sweeper: asyncio.Task[None] | None = None
        if fast_uds or fast_bind is not None:
            warnings.warn(
                "Host(fast_uds=, fast_bind=) are now local_uds= and local_bind=",
                DeprecationWarning,
                stacklevel=2,
            )
            local_uds, local_bind = local_uds or fast_uds, local_bind or fast_bind
        self.local_url: str | None = None
        """The local channel's URL, or None when the host has none."""
        if local_uds or local_bind is not None:
            self.listen_local(local_bind)
        if bind is not None:
            self.listen(bind, certfile=certfile, keyfile=keyfile)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> Host:
        """A host configured from ``Settings`` (`HostConfig.from_settings`, ADMISSION_*,
        OPEN_REGISTRATION, STORE); ``kwargs`` are the constructor's other arguments and
        override."""
        if settings is None:
            settings = cast(Callable[[], Settings], Settings)()
        options: dict[str, Any] = {
            "admission": AdmissionPolicy.from_settings(settings),
            "store": StoreConfig.from_settings(settings),
        }
        options.update(kwargs)
        return cls(HostConfig.from_settings(settings), **options)

    def _rate_key(self, ctx: Any) -> str:
        """The caller's runtime id when its credentials are valid, else its IP address."""
        runtime_id = ctx.request_headers.get("x-plugin-runtime-id")
        authorization = ctx.request_headers.get("authorization") or ""
        if (
            runtime_id
            and authorization[:7].lower() == "bearer "
            and self.tokens.validate(runtime_id, authorization[7:].strip())
        ):
            return "id:" + str(runtime_id)
        return default_rate_limit_key(ctx)

    # -- the shared state ----------------------------------------------------------------
    def platform_managed(self) -> list[str]:
        """Runtime ids whose leases this host keeps (the plugins its platform added)."""
        return self.platform.managed()

    async def commit(self) -> None:
        """Wait until the shared store took every change this host made (nothing to wait
        for with the in-memory store)."""
        if self.shared is not None:
            await self.shared.commit()

    # -- identities ----------------------------------------------------------------------
    def add_identity(self, record: PluginRecord, provides: frozenset[str] | None) -> None:
        """Record a live plugin (after its admission) and the service types it may register
        (None: any, only under open registration)."""
        self.registry.store.put_plugin(record)
        if provides is not None:
            self.registry.set_allowed_services(record.runtime_id, provides)
        self.graph.add(Node(record.runtime_id, record.self_id, record.provides, record.requires))

    def forget(self, runtime_id: str) -> None:
        """Drop every trace of a plugin: token, grants, registrations, health, routes."""
        self.registry.unregister_plugin(runtime_id)
        self.tokens.revoke(runtime_id)
        self.broker.revoke_for(runtime_id)
        self.tracker.forget(runtime_id)
        self.router.remove(runtime_id)
        self.graph.remove(runtime_id)
        self.registry.store.remove_plugin(runtime_id)

    # -- capabilities --------------------------------------------------------------------
    def register_capability(
        self, capability_type: str, version: str, app: ASGIApp | Plugin
    ) -> None:
        """Offer a capability (an ASGI app, or an in-memory plugin) to plugins."""
        self.broker.register(capability_type, version, app)

    # -- serving -------------------------------------------------------------------------
    def in_memory_client(self) -> pyqwest.Client:
        """A pyqwest client reaching this host with no socket (base URL ``self.url``)."""
        return pyqwest.Client(ASGITransport(self.app))

    def listen(
        self,
        bind: str = "127.0.0.1:0",
        *,
        certfile: _Path | None = None,
        keyfile: _Path | None = None,
    ) -> str:
        """Take the socket now (connections wait until ``start()``); the host's base URL."""
        self.url = self._listeners.bind(bind, certfile=certfile, keyfile=keyfile)
        self.broker.base_url = self.url
        return self.url

    def listen_local(self, bind: str | None = None) -> str:
        """Take the local channel's socket now (default: a Unix socket in a new private
        directory); its URL, also in ``local_url``. ``start()`` serves it beside ``url``."""
        self.local_url = self._listeners.bind_local(bind)
        return self.local_url

    @property
    def fast_url(self) -> str | None:
        """Deprecated: ``local_url``."""
        warnings.warn("Host.fast_url is now Host.local_url", DeprecationWarning, stacklevel=2)
        return self.local_url

    def listen_fast(self, bind: str | None = None) -> str:
        """Deprecated: `listen_local`."""
        warnings.warn("Host.listen_fast is now Host.listen_local", DeprecationWarning, stacklevel=2)
        return self.listen_local(bind)

    async def start(
        self,
        bind: str | None = None,
        *,
        certfile: _Path | None = None,
        keyfile: _Path | None = None,
    ) -> str:
        """Serve until ``stop()`` on the socket ``listen()`` took, or on ``bind``; the URL."""
        listeners = self._listeners
        if listeners.serving:
            raise RuntimeError(f"host already serving at {self.url}")
        if listeners.url is None:
            self.listen(bind or "127.0.0.1:0", certfile=certfile, keyfile=keyfile)
        elif bind is not None or certfile is not None:
            raise RuntimeError(f"host already bound to {self.url}: give bind and TLS once")
        if self.shared is not None:
            await self.shared.start(self.url)  # the replica is loaded before any call
        await listeners.start(
            self.app,
            self.router,
            self._connect_apps,
            client_ca=self.admission.policy.client_ca,
            limits=self.config.limits,
            grace_period=self.config.grace_period,
        )
        self._sweeper = asyncio.create_task(self._sweep_forever())
        if self.admission.policy.open_registration:
            log.warning(
                "open registration: anyone who reaches %s may join and register any service "
                "type; for development only (docs/security.md#admission)",
                self.url,
            )
        log.info(
            "host serving at %s", self.url + (f" and {self.local_url}" if self.local_url else "")
        )
        return self.url

    async def stop(self) -> None:
        """Stop serving; in-flight calls get the grace period."""
        self.health.shutdown()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self._listeners.stop()
        await self.platform.aclose()
        await self.router.aclose()
        if self.shared is not None:
            await self.shared.stop()

    def sweep(self) -> tuple[list[str], int]:
        """Purge expired runtime tokens and grants now."""
        return self.tokens.sweep(), self.broker.sweep()

    async def _sweep_forever(self) -> None:
        while True:
            await self.clock.sleep(self.config.sweep_interval)
            expired, grants = self.sweep()
            if expired or grants:
                log.info(
                    "purged %d expired runtime tokens, %d expired grants", len(expired), grants
                )

    async def __aenter__(self) -> Host:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
