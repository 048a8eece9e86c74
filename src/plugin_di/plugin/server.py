"""Serve plugins over Connect: the plugin process's main loop (go-plugin's ``Serve``).

`serve()` binds ``127.0.0.1:0`` (or the given address, or a Unix socket), serves the
plugins with a `PluginServer` (`plugin_di.plugin.runtime`: HTTP/1.1 and HTTP/2 on one
port, Connect, gRPC and gRPC-Web, TLS when given), prints exactly one handshake line on
stdout when ready, and stops gracefully on SIGTERM, SIGINT, the Shutdown RPC or the death
of the launching host, then exits 0 (130 after SIGINT, as a shell reports Ctrl-C). The
protocol is described in ``docs/internals.md``.
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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.eventloop import EventLoopKind, loop_factory
from plugin_di.plugin import config as plugin_config
from plugin_di.plugin import env
from plugin_di.plugin.config import PluginServeConfig
from plugin_di.plugin.definition import PluginsLike, as_plugin_set
from plugin_di.plugin.handshake import VersionMismatchError, negotiate_version
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.plugin.observed import observed_from_env
from plugin_di.plugin.runtime import PluginServer
from plugin_di.plugin.security import ServerSecurity
from plugin_di.rpc.serving import bind_socket

if TYPE_CHECKING:
    from plugin_di.plugin.host_session import OnSession

__all__ = ["OnReady", "PluginServeConfig", "PluginServer", "serve", "serve_async", "serve_on_host"]

OnReady = Callable[[PluginServer, HandshakeLine], None]
"""Called once the plugin serves and its handshake line is written."""

log = logging.getLogger("plugin_di.plugin.server")

# pyqwest's tokio threads can abort the interpreter if the loop ends right after
# an async client closed; a short tick lets them settle.
_PYQWEST_SETTLE_SECONDS = 0.05


def _listen_address(config: PluginServeConfig, environ: Mapping[str, str], *, tls: bool) -> str:
    if config.uds:
        return "unix:" + os.fspath(config.uds)
    if config.bind:
        return config.bind
    socket_dir = environ.get(env.UNIX_SOCKET_DIR, "")
    # The host's socket directory is a preference: its https client needs TCP for TLS.
    if socket_dir and not tls:
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
    config: PluginServeConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    handle_signals: bool = True,
    watch_parent: bool = True,
    on_ready: OnReady | None = None,
    clock: Clock = SYSTEM_CLOCK,
    **options: Any,
) -> int:
    """`serve` inside a running loop; returns the exit code.

    ``config`` says how to serve; ``options`` are its fields as keyword arguments
    (``bind=...``, ``grace_period=...``), applied over it. What it leaves unset comes from
    ``environ`` (`PluginServeConfig.resolved`). With ``PLUGIN_DI_HOST_URL`` set and no
    ``on_ready``, the plugin joins that host (`plugin_di.plugin.host_membership`). With
    ``PLUGIN_DI_OTEL=1`` it serves with OpenTelemetry (`plugin_di.otel`, exporters from the
    ``OTEL_*`` variables), flushed when it stops.
    """
    environ = os.environ if environ is None else environ
    name = environ.get(env.PLUGIN_NAME) or next(iter(as_plugin_set(plugins)), "plugin-di")
    with observed_from_env(environ, name):
        return await _serve(
            plugins,
            config,
            environ=environ,
            stdout=stdout,
            handle_signals=handle_signals,
            watch_parent=watch_parent,
            on_ready=on_ready,
            clock=clock,
            **options,
        )


async def _serve(
    plugins: PluginsLike,
    config: PluginServeConfig | None,
    *,
    environ: Mapping[str, str],
    stdout: TextIO | None,
    handle_signals: bool,
    watch_parent: bool,
    on_ready: OnReady | None,
    clock: Clock,
    **options: Any,
) -> int:
    config = PluginServeConfig.of(config, **options).resolved(environ)
    # resolved: nothing is left None (for the type checker)
    assert config.grace_period is not None
    assert config.max_message_bytes is not None
    # launcher auth, rate limit and automatic mTLS, as the launcher asked (plugin.security)
    own_tls = config.tls_cert is not None
    security = ServerSecurity.from_environ(environ, clock=clock, own_tls=own_tls)
    out = stdout if stdout is not None else sys.stdout
    cookie_error = plugin_config.check_cookie(
        config.magic_cookie_key, config.magic_cookie_value, environ
    )
    if cookie_error:
        print(cookie_error, file=sys.stderr)
        return 1
    server = PluginServer(
        plugins,
        magic_cookie_key=config.magic_cookie_key,
        magic_cookie_value=config.magic_cookie_value,
        app_protocol_versions=config.app_protocol_versions,
        interceptors=[*security.interceptors, *config.interceptors],
        max_message_bytes=config.max_message_bytes,
        server_metadata=config.server_metadata,
        grace_period=config.grace_period,
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
    context = security.ssl_context
    if config.tls_cert is not None and config.tls_key is not None:
        from plugin_di.rpc.tls import load_server_tls

        context = load_server_tls(config.tls_cert, config.tls_key).ssl_context()
    bound = bind_socket(_listen_address(config, environ, tls=own_tls or security.tls))
    line = HandshakeLine(
        env.CORE_PROTOCOL_VERSION,
        app_version,
        bound.network,
        bound.address,
        cert_der=_cert_der(config.tls_cert) if config.tls_cert else security.cert_der,
    )

    membership = None
    if on_ready is None and environ.get(env.HOST_URL):  # a host platform: join it once serving
        from plugin_di.plugin.host_membership import join_host

        on_ready = membership = join_host(plugins, environ=environ)

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
        await server.run(bound, tls=context, limits=config.limits, ready=ready)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    if membership is not None:
        await membership.leave()  # unregister: dependents see the services go
    await asyncio.sleep(_PYQWEST_SETTLE_SECONDS)
    return 128 + signal.SIGINT if server.stop_reason == signal.SIGINT.name else 0


def _loop_kind() -> EventLoopKind:
    kind = os.environ.get("PLUGIN_DI_EVENT_LOOP", "auto").strip().lower() or "auto"
    if kind not in ("auto", "uvloop", "asyncio"):
        raise plugin_config.PluginConfigError(
            f"PLUGIN_DI_EVENT_LOOP={kind!r} is not one of auto, uvloop, asyncio"
        )
    return cast(EventLoopKind, kind)


def _watch_parent(loop: asyncio.AbstractEventLoop, server: PluginServer) -> None:
    try:
        from plugin_di.plugin.parent_watch import watch_parent
    except ImportError:  # not every platform build ships it
        return

    def on_parent_death() -> None:
        loop.call_soon_threadsafe(server.request_stop, None, "the host process died")

    watch_parent(on_parent_death)


@contextlib.contextmanager
def _plugin_process_stdio() -> Iterator[TextIO]:
    """Log to stderr (unless logging is set up) and point ``sys.stdout`` at stderr while
    serving: stdout carries only the handshake line. Yields the real stdout."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
        if os.environ.get("PLUGIN_DI_LOG_FORMAT") == "json":  # the host reads JSON lines too
            from plugin_di.logs import JSONFormatter

            logging.getLogger().handlers[0].setFormatter(JSONFormatter())
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield real_stdout
    finally:
        sys.stdout = real_stdout


def serve(plugins: PluginsLike, config: PluginServeConfig | None = None, **options: Any) -> int:
    """Serve ``plugins`` until stopped; return the process exit code (0 after a graceful stop).

    ``config`` (a `PluginServeConfig`) or its fields as keyword arguments (``bind=...``,
    ``uds=...``, ``tls_cert=...``, ``grace_period=...``) say how. Stdout carries only the
    handshake line: anything else printed while serving goes to stderr. Configuration
    errors are reported on stderr with exit code 1.
    """
    with _plugin_process_stdio() as real_stdout:
        try:
            config = PluginServeConfig.of(config, **options)
            with asyncio.Runner(loop_factory=loop_factory(_loop_kind())) as runner:
                return runner.run(serve_async(plugins, config, stdout=real_stdout))
        except (plugin_config.PluginConfigError, OSError, ValueError) as exc:
            print(f"plugin-di serve: {exc}", file=sys.stderr)
            return 1


def serve_on_host(
    plugins: PluginsLike,
    *,
    on_session: OnSession | None = None,
    **serve_kwargs: Any,
) -> int:
    """Like `serve`, and join the host platform once serving.

    Self-registers with ``PLUGIN_DI_HOST_URL`` when it is set, else waits to be
    managed by the host that launched it; after a graceful stop it leaves the
    host (its dependents see the services go). ``on_session`` receives the plugin's
    `HostSession` as soon as it exists. Returns the process exit code.
    """
    from plugin_di.plugin.host_membership import join_host

    async def main(real_stdout: TextIO) -> int:
        membership = join_host(plugins, on_session=on_session)
        try:
            return await serve_async(
                plugins, stdout=real_stdout, on_ready=membership, **serve_kwargs
            )
        finally:
            await membership.leave()

    with _plugin_process_stdio() as real_stdout:
        return asyncio.run(main(real_stdout))
