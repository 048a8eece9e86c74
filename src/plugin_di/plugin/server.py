"""Serve plugins over Connect: the plugin process's main loop (go-plugin's ``Serve``).

`serve()` binds ``127.0.0.1:0`` (or the given address, or a Unix socket),
serves the plugins' services next to the runtime services (handshake, both
health services, identity, control, reflection) with hypercorn, prints exactly
one handshake line on stdout when ready, and stops gracefully on SIGTERM,
SIGINT, the Shutdown RPC or the death of the launching host: health flips to
NOT_SERVING, each implementation's optional ``async def on_shutdown()`` runs
(to end its long-lived streams), in-flight calls get the grace period, and
the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import ssl
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

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
from plugin_di.plugin._inflight import InFlight
from plugin_di.plugin._stream_hygiene import StreamHygiene
from plugin_di.plugin.control import DEFAULT_GRACE_SECONDS, PluginControlServer
from plugin_di.plugin.definition import PluginSet, PluginsLike, as_plugin_set, service_descriptor
from plugin_di.plugin.handshake import HandshakeServer, VersionMismatchError, negotiate_version
from plugin_di.plugin.handshake_line import HandshakeLine
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
from plugin_di.rpc.hypercorn import BoundSocket, bind_socket, hypercorn_config, serve_asgi

log = logging.getLogger("plugin_di.plugin.server")

# pyqwest's tokio threads can abort the interpreter if the loop ends right after
# an async client closed; a short tick lets them settle.
_PYQWEST_SETTLE_SECONDS = 0.05
# Once no call is in flight, idle connections get this long before they are dropped.
_IDLE_CLOSE_SECONDS = 0.1


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
        kwargs: dict[str, Any] = {
            "interceptors": [SanitizeErrors(), *interceptors],
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
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        ready: Callable[[], None] | None = None,
    ) -> None:
        """Serve on ``bound`` until `request_stop`; return once drained."""
        config = hypercorn_config(
            certfile=certfile, keyfile=keyfile, graceful_timeout=self.grace_period
        )
        requested = self._event()
        drain = asyncio.Event()
        app = InFlight(StreamHygiene(self.app))
        clock = self._clock

        async def stop_when_requested() -> None:
            await requested.wait()
            deadline = clock.now() + self.grace_period
            log.info("stopping: %s (grace period %.1fs)", self._stop_reason, self.grace_period)
            await self.begin_stop()
            await _first(app.wait_idle(), clock.sleep(max(0.0, deadline - clock.now())))
            if app.count:
                log.warning("grace period over: cancelling %d call(s) in flight", app.count)
                app.cancel_all()
                await app.wait_idle()
            # Only idle keep-alive connections are left: hypercorn may drop them now.
            config.graceful_timeout = _IDLE_CLOSE_SECONDS
            drain.set()

        watcher = asyncio.create_task(stop_when_requested())
        try:
            await serve_asgi(app, bound, config=config, shutdown=drain, ready=ready)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self.health.shutdown()
            if self._stopped is None:
                self._stopped = asyncio.Event()
            self._stopped.set()


async def _first(*waits: Coroutine[Any, Any, None]) -> None:
    """Wait until the first of ``waits`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _listen_address(
    bind: str | None, uds: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> str:
    if bind and uds:
        raise plugin_config.PluginConfigError("give either bind or uds, not both")
    if uds:
        return "unix:" + os.fspath(uds)
    if bind:
        return bind
    socket_dir = environ.get(env.UNIX_SOCKET_DIR, "")
    if socket_dir:
        name = f"plugin-{os.getpid()}-{secrets.token_hex(4)}.sock"
        return "unix:" + str(Path(socket_dir) / name)
    return "127.0.0.1:0"


def _cert_der(tls_cert: str | os.PathLike[str]) -> bytes:
    pem = Path(tls_cert).read_text()
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(pem[start:end])


async def serve_async(
    plugins: PluginsLike,
    *,
    bind: str | None = None,
    uds: str | os.PathLike[str] | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    magic_cookie_key: str = env.DEFAULT_MAGIC_COOKIE_KEY,
    magic_cookie_value: str = env.DEFAULT_MAGIC_COOKIE_VALUE,
    app_protocol_versions: Sequence[int] | None = None,
    interceptors: Iterable[Interceptor] = (),
    grace_period: float = DEFAULT_GRACE_SECONDS,
    server_metadata: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    handle_signals: bool = True,
    watch_parent: bool = True,
    on_ready: Callable[[PluginServer, HandshakeLine], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """`serve` inside a running loop; returns the exit code."""
    environ = os.environ if environ is None else environ
    out = stdout if stdout is not None else sys.stdout
    cookie_error = plugin_config.check_cookie(magic_cookie_key, magic_cookie_value, environ)
    if cookie_error:
        print(cookie_error, file=sys.stderr)
        return 1
    server = PluginServer(
        plugins,
        magic_cookie_key=magic_cookie_key,
        magic_cookie_value=magic_cookie_value,
        app_protocol_versions=app_protocol_versions,
        interceptors=interceptors,
        max_message_bytes=plugin_config.max_message_bytes(environ),
        server_metadata=server_metadata,
        grace_period=grace_period,
        clock=clock,
    )
    offered = plugin_config.host_versions(environ)
    try:
        app_version = negotiate_version(
            offered or server.app_protocol_versions, server.app_protocol_versions
        )
    except VersionMismatchError as exc:
        print(f"incompatible plugin: {exc} (from {env.PROTOCOL_VERSIONS})", file=sys.stderr)
        return 1
    bound = bind_socket(_listen_address(bind, uds, environ))
    line = HandshakeLine(
        env.CORE_PROTOCOL_VERSION,
        app_version,
        bound.network,
        bound.address,
        cert_der=_cert_der(tls_cert) if tls_cert else b"",
    )

    def ready() -> None:
        out.write(line.format() + "\n")
        out.flush()
        if on_ready is not None:
            on_ready(server, line)

    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for signum in signals:
        loop.add_signal_handler(signum, server.request_stop, None, signal.Signals(signum).name)
    if watch_parent:
        _watch_parent(loop, server)
    try:
        await server.run(bound, certfile=tls_cert, keyfile=tls_key, ready=ready)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    await asyncio.sleep(_PYQWEST_SETTLE_SECONDS)
    return 0


def _watch_parent(loop: asyncio.AbstractEventLoop, server: PluginServer) -> None:
    try:
        from plugin_di.plugin.parent_watch import watch_parent
    except ImportError:  # not every platform build ships it
        return

    def on_parent_death() -> None:
        loop.call_soon_threadsafe(server.request_stop, None, "the host process died")

    watch_parent(on_parent_death)


def serve(
    plugins: PluginsLike,
    *,
    bind: str | None = None,
    uds: str | os.PathLike[str] | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    magic_cookie_key: str = env.DEFAULT_MAGIC_COOKIE_KEY,
    magic_cookie_value: str = env.DEFAULT_MAGIC_COOKIE_VALUE,
    app_protocol_versions: Sequence[int] | None = None,
    interceptors: Iterable[Interceptor] = (),
    grace_period: float = DEFAULT_GRACE_SECONDS,
    server_metadata: Mapping[str, str] | None = None,
) -> int:
    """Serve ``plugins`` until stopped; return the process exit code (0 after a graceful stop).

    Stdout carries only the handshake line: anything else printed while
    serving goes to stderr. Configuration errors are reported on stderr with
    exit code 1.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        return asyncio.run(
            serve_async(
                plugins,
                bind=bind,
                uds=uds,
                tls_cert=tls_cert,
                tls_key=tls_key,
                magic_cookie_key=magic_cookie_key,
                magic_cookie_value=magic_cookie_value,
                app_protocol_versions=app_protocol_versions,
                interceptors=interceptors,
                grace_period=grace_period,
                server_metadata=server_metadata,
                stdout=real_stdout,
            )
        )
    except (plugin_config.PluginConfigError, OSError, ValueError) as exc:
        print(f"plugin-di serve: {exc}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = real_stdout
