"""Serve plugins over Connect: the plugin process's main loop (go-plugin's ``Serve``).

`serve()` binds ``127.0.0.1:0`` (or the given address, or a Unix socket), serves the
plugins with a `PluginServer` (`plugin_di.plugin.runtime`: HTTP/1.1 and HTTP/2 on one
port, Connect, gRPC and gRPC-Web, TLS when given), prints exactly one handshake line on
stdout when ready, and stops gracefully on SIGTERM, SIGINT, the Shutdown RPC or the death
of the launching host, then exits 0. The protocol is described in ``docs/internals.md``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import ssl
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO, cast

from connectrpc.interceptor import Interceptor

from plugin_di import eventloop
from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.plugin import config as plugin_config
from plugin_di.plugin import env
from plugin_di.plugin.definition import PluginsLike
from plugin_di.plugin.handshake import VersionMismatchError, negotiate_version
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.plugin.runtime import PluginServer
from plugin_di.plugin.security import ServerSecurity
from plugin_di.rpc.serving import bind_socket

__all__ = ["PluginServer", "serve", "serve_async"]

log = logging.getLogger("plugin_di.plugin.server")

# pyqwest's tokio threads can abort the interpreter if the loop ends right after
# an async client closed; a short tick lets them settle.
_PYQWEST_SETTLE_SECONDS = 0.05


def _listen_address(
    bind: str | None,
    uds: str | os.PathLike[str] | None,
    environ: Mapping[str, str],
    *,
    tls: bool = False,
) -> str:
    if bind and uds:
        raise plugin_config.PluginConfigError("give either bind or uds, not both")
    if uds:
        return "unix:" + os.fspath(uds)
    if bind:
        return bind
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
    *,
    bind: str | None = None,
    uds: str | os.PathLike[str] | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    magic_cookie_key: str = env.DEFAULT_MAGIC_COOKIE_KEY,
    magic_cookie_value: str = env.DEFAULT_MAGIC_COOKIE_VALUE,
    app_protocol_versions: Sequence[int] | None = None,
    interceptors: Iterable[Interceptor] = (),
    grace_period: float | None = None,
    server_metadata: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    handle_signals: bool = True,
    watch_parent: bool = True,
    on_ready: Callable[[PluginServer, HandshakeLine], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """`serve` inside a running loop; returns the exit code.

    With ``PLUGIN_DI_HOST_URL`` set and no ``on_ready``, the plugin joins that host
    (`plugin_di.plugin.host_client`). The listener's limits come from the environment
    (`plugin_di.plugin.config.server_limits`).
    """
    environ = os.environ if environ is None else environ
    limits = plugin_config.server_limits(environ)
    if grace_period is None:
        grace_period = plugin_config.shutdown_grace(environ)
    # launcher auth, rate limit and automatic mTLS, as the launcher asked (plugin.security)
    security = ServerSecurity.from_environ(environ, clock=clock, own_tls=tls_cert is not None)
    tls = tls_cert is not None or security.tls
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
        interceptors=[*security.interceptors, *interceptors],
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
    context = security.ssl_context
    if tls_cert is not None:
        if tls_key is None:
            raise plugin_config.PluginConfigError("TLS needs both a certificate and a key file")
        from plugin_di.rpc.tls import load_server_tls

        context = load_server_tls(tls_cert, tls_key).ssl_context()
    bound = bind_socket(_listen_address(bind, uds, environ, tls=tls))
    line = HandshakeLine(
        env.CORE_PROTOCOL_VERSION,
        app_version,
        bound.network,
        bound.address,
        cert_der=_cert_der(tls_cert) if tls_cert else security.cert_der,
    )

    membership = None
    if on_ready is None and environ.get(env.HOST_URL):  # a host platform: join it once serving
        from plugin_di.plugin.host_client import join_host

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
        await server.run(bound, tls=context, limits=limits, ready=ready)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    if membership is not None:
        await membership.leave()  # unregister: dependents see the services go
    await asyncio.sleep(_PYQWEST_SETTLE_SECONDS)
    return 0


def _loop_kind() -> eventloop.EventLoopKind:
    kind = os.environ.get("PLUGIN_DI_EVENT_LOOP", "auto").strip().lower() or "auto"
    if kind not in ("auto", "uvloop", "asyncio"):
        raise plugin_config.PluginConfigError(
            f"PLUGIN_DI_EVENT_LOOP={kind!r} is not one of auto, uvloop, asyncio"
        )
    return cast(eventloop.EventLoopKind, kind)


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
    grace_period: float | None = None,
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
        with asyncio.Runner(loop_factory=eventloop.loop_factory(_loop_kind())) as runner:
            return runner.run(
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
