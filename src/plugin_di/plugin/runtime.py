"""What one plugin process serves, as one ASGI app, and how it stops (`PluginServer`).

The plugins' own services sit next to the runtime services: handshake, both
health services, identity, control and reflection, plus ``/healthz`` and
``/readyz``. A stop flips health to NOT_SERVING, runs each implementation's
optional ``async def on_shutdown()``, gives in-flight calls the grace period
(measured on an injectable clock), cancels what still runs, and drops idle
connections. `plugin_di.plugin.server.serve` runs it as a process.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from connectrpc.interceptor import Interceptor

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.gen.connectplugin.health.v1.health_connect import (
    HealthServiceASGIApplication,
    HealthServiceClient,
)
from plugin_di.gen.connectplugin.v1.handshake_connect import (
    HandshakeServiceASGIApplication,
    HandshakeServiceClient,
)
from plugin_di.gen.connectplugin.v1.lifecycle_connect import (
    PluginControlASGIApplication,
    PluginControlClient,
)
from plugin_di.gen.connectplugin.v1.plugininfo_connect import (
    PluginIdentityASGIApplication,
    PluginIdentityClient,
)
from plugin_di.gen.grpc.health.v1.health_connect import HealthASGIApplication, HealthClient
from plugin_di.plugin import config as plugin_config
from plugin_di.plugin import env
from plugin_di.plugin.control import DEFAULT_GRACE_SECONDS, PluginControlServer
from plugin_di.plugin.definition import PluginSet, PluginsLike, as_plugin_set, service_descriptor
from plugin_di.plugin.handshake import HandshakeServer
from plugin_di.plugin.health import (
    ConnectPluginHealthService,
    GrpcHealthService,
    Health,
    HTTPProbes,
)
from plugin_di.plugin.identity import IdentityStore, PluginIdentityServer
from plugin_di.plugin.reflection import reflection_apps
from plugin_di.rpc.asgi import ServiceMux
from plugin_di.rpc.errors import SanitizeErrors
from plugin_di.rpc.serving import BoundSocket, Limits, Listener, ServeConfig, Server
from plugin_di.rpc.telemetry import current as current_telemetry

log = logging.getLogger("plugin_di.plugin.server")

_RUNTIME_CLIENTS = (
    HandshakeServiceClient,
    HealthServiceClient,
    HealthClient,
    PluginIdentityClient,
    PluginControlClient,
)


def _server_versions(plugins: PluginSet, explicit: Sequence[int] | None) -> tuple[int, ...]:
    if explicit:
        return tuple(explicit)
    common: set[int] | None = None
    for plugin in plugins.values():
        versions = set(plugin.app_protocol_versions)
        common = versions if common is None else common & versions
    if not common:
        raise plugin_config.PluginConfigError(
            "the plugins served together share no application protocol version; "
            "serve them separately or align their app_protocol_versions"
        )
    return tuple(sorted(common))


class PluginServer:
    """Everything one plugin process serves, as one ASGI app, and its stop logic."""

    def __init__(
        self,
        plugins: PluginsLike,
        *,
        magic_cookie_key: str = env.DEFAULT_MAGIC_COOKIE_KEY,
        magic_cookie_value: str = env.DEFAULT_MAGIC_COOKIE_VALUE,
        app_protocol_versions: Sequence[int] | None = None,
        interceptors: Iterable[Interceptor] = (),
        max_message_bytes: int = plugin_config.DEFAULT_MAX_MESSAGE_BYTES,
        server_metadata: Mapping[str, str] | None = None,
        reflection: bool = True,
        grace_period: float = DEFAULT_GRACE_SECONDS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.plugins = as_plugin_set(plugins)
        self._clock = clock
        self.app_protocol_versions = _server_versions(self.plugins, app_protocol_versions)
        services = [s for p in self.plugins.values() for s in p.services]
        missing = [s.full_name for s in services if s.impl is None]
        if missing:
            raise plugin_config.PluginConfigError(
                f"cannot serve {', '.join(missing)}: no implementation (Service(..., impl=...))"
            )
        self.health = Health([*self.plugins, *(s.full_name for s in services)])
        self.identity = IdentityStore()
        self.grace_period = grace_period
        self._stop_requested: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_reason = ""
        telemetry = current_telemetry()  # outermost: its span sees the sanitized error
        kwargs: dict[str, Any] = {
            "interceptors": [
                *(telemetry.server_interceptors() if telemetry else ()),
                SanitizeErrors(),
                *interceptors,
            ],
            "read_max_bytes": max_message_bytes,
        }
        apps: list[Any] = [s.application(s.impl, **kwargs) for s in services]
        handshake = HandshakeServer(
            self.plugins,
            magic_cookie_key=magic_cookie_key,
            magic_cookie_value=magic_cookie_value,
            app_protocol_versions=self.app_protocol_versions,
            server_metadata=server_metadata,
        )
        control = PluginControlServer(
            self.health, self.request_stop, default_grace_seconds=grace_period
        )
        apps += [
            HandshakeServiceASGIApplication(handshake, **kwargs),
            HealthServiceASGIApplication(ConnectPluginHealthService(self.health), **kwargs),
            HealthASGIApplication(GrpcHealthService(self.health), **kwargs),
            PluginIdentityASGIApplication(
                PluginIdentityServer(list(self.plugins.values()), self.identity), **kwargs
            ),
            PluginControlASGIApplication(control, **kwargs),
        ]
        if reflection:
            descriptors = [s.descriptor for s in services]
            descriptors += [service_descriptor(c) for c in _RUNTIME_CLIENTS]
            apps += reflection_apps(descriptors, **kwargs)
        self.app = ServiceMux(apps, max_message_bytes=max_message_bytes)
        self._connect_apps = apps
        self._max_message_bytes = max_message_bytes
        probes = HTTPProbes(self.health)
        self.app.mount("/healthz", probes)
        self.app.mount("/readyz", probes)
        self._impls = [s.impl for s in services]

    @property
    def stop_reason(self) -> str:
        """Why the stop was requested ('' while running)."""
        return self._stop_reason

    def _event(self) -> asyncio.Event:
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        return self._stop_requested

    def request_stop(
        self, grace_period: float | None = None, reason: str = "stop requested"
    ) -> None:
        """Begin a graceful stop (from the event loop's thread). Later calls are ignored."""
        event = self._event()
        if event.is_set():
            return
        if grace_period is not None:
            self.grace_period = grace_period
        self._stop_reason = reason
        event.set()

    async def wait_stopped(self) -> None:
        """Return once `run` has finished (the socket is closed)."""
        if self._stopped is None:
            self._stopped = asyncio.Event()
        await self._stopped.wait()

    async def begin_stop(self) -> None:
        """NOT_SERVING everywhere, then each implementation's ``on_shutdown()``."""
        self.health.shutdown()
        for impl in self._impls:
            hook = getattr(impl, "on_shutdown", None)
            if hook is None:
                continue
            try:
                result = hook()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("on_shutdown of %s failed; stopping anyway", type(impl).__name__)

    async def run(
        self,
        bound: BoundSocket,
        *,
        tls: ssl.SSLContext | None = None,
        limits: Limits | None = None,
        ready: Callable[[], None] | None = None,
    ) -> None:
        """Serve on ``bound`` until `request_stop`; return once drained.

        One server (`plugin_di.rpc.serving`) speaks HTTP/1.1 and HTTP/2 on the socket, with
        ``tls`` when given (handlers then see the client certificate through
        `plugin_di.rpc.tls.peer_certificate`). Connect unary calls on cleartext HTTP/1.1 skip
        the ASGI cycle (`plugin_di.rpc.unary_shortpath`).
        """
        from plugin_di.rpc.unary_shortpath import UnaryShortPaths

        app: Any = self.app
        if tls is not None:
            from plugin_di.rpc.tls import PeerCertMiddleware

            app = PeerCertMiddleware(self.app)
        server = Server(
            app,
            Listener(bound, tls),
            ServeConfig(limits or Limits(), grace_period=self.grace_period),
            short_paths=UnaryShortPaths(
                self._connect_apps, max_message_bytes=self._max_message_bytes
            ),
            clock=self._clock,
        )
        requested = self._event()
        clock = self._clock
        try:
            await server.start()
            if ready is not None:
                ready()
            await requested.wait()
            deadline = clock.now() + self.grace_period
            log.info("stopping: %s (grace period %.1fs)", self._stop_reason, self.grace_period)
            await self.begin_stop()
            await server.stop(max(0.0, deadline - clock.now()))
        finally:
            await server.stop()
            self.health.shutdown()
            if self._stopped is None:
                self._stopped = asyncio.Event()
            self._stopped.set()
