"""One plugin process: spawn it, read its handshake line, forward its output, stop it.

The child gets its own process group, so a Ctrl-C in the terminal reaches only
the host, which then stops plugins in reverse dependency order; the parent-death
signal and the parent pipe (see ``plugin_di.plugin.parent_watch``) do not depend
on the group, so a dead host still takes its plugins with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.launch._logs import plugin_logger
from plugin_di.launch._output import PluginOutput
from plugin_di.launch.config import LaunchAdmission, LaunchConfig
from plugin_di.launch.failures import PluginStartError, describe_exit
from plugin_di.plugin import env as plugin_env
from plugin_di.plugin.handshake_line import HandshakeLine, HandshakeLineError
from plugin_di.plugin.security import REQUIRE_AUTH
from plugin_di.rpc.telemetry import current as current_telemetry

if TYPE_CHECKING:
    from plugin_di.launch.zygote import ZygoteChild
    from plugin_di.rpc.tls import CertKeyPair, ClientTLS

__all__ = [
    "LaunchAdmission",
    "LaunchConfig",
    "PluginProcess",
    "PluginStartError",
    "ShutdownCall",
    "describe_exit",
]

_CRASHED_HINT = "the plugin failed before it served: its last stderr lines say why"
_READ_LIMIT = 1024 * 1024
_DRAIN_SECONDS = 0.5

ShutdownCall = Callable[[float], Awaitable[object]]
"""Asks the plugin to stop gracefully (PluginControl.Shutdown) within a grace period."""


class PluginProcess:
    """A launched plugin process. ``start()`` once, then ``wait()`` and ``stop()``."""

    def __init__(
        self, config: LaunchConfig, *, clock: Clock = SYSTEM_CLOCK, hold_start_output: bool = True
    ) -> None:
        """``hold_start_output``: while it starts, hold its last stderr lines back from the
        log, so a start error tells them once (`plugin_di.launch._output`)."""
        if not config.command:
            raise ValueError(f"plugin {config.name!r}: empty command")
        self.config = config
        self.secret = secrets.token_urlsafe(32)
        self._clock = clock
        self._logger = plugin_logger(config.name)
        self._output = PluginOutput(
            self._logger, config.name, config.stderr_tail_lines, hold=hold_start_output
        )
        self._proc: asyncio.subprocess.Process | ZygoteChild | None = None
        self._pipe_w: int | None = None
        self._socket_dir: str | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._handshake: HandshakeLine | None = None
        self._stopped = False
        self._forget_admission: Callable[[], None] | None = None
        # auto_mtls: this launch's host certificate (sent as PLUGIN_CLIENT_CERT); see client_tls
        self.host_cert: CertKeyPair | None = None
        if config.auto_mtls:
            from plugin_di.rpc.tls import generate_ephemeral_cert  # cryptography: only here

            self.host_cert = generate_ephemeral_cert(f"plugin-di-host-{config.name}")

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def handshake(self) -> HandshakeLine:
        """The parsed handshake line (after ``start()``)."""
        if self._handshake is None:
            raise RuntimeError(f"plugin {self.name!r} has not started")
        return self._handshake

    @property
    def url(self) -> str:
        return self.handshake.url

    def client_tls(self) -> ClientTLS | None:
        """TLS for clients of this process: its handshake certificate pinned and, with
        ``auto_mtls``, the host certificate presented; None for a plaintext plugin."""
        cert_der = self.handshake.cert_der
        if not cert_der:
            return None
        from plugin_di.rpc.tls import ClientTLS, der_to_pem, pinned_client_tls

        if self.host_cert is not None:
            return pinned_client_tls(self.host_cert, der_to_pem(cert_der))
        return ClientTLS(ca_pem=der_to_pem(cert_der))

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    @property
    def stderr_tail(self) -> list[str]:
        """The last lines the plugin wrote on stderr."""
        return self._output.tail

    def child_env(self) -> dict[str, str]:
        """The environment the child is started with."""
        cfg = self.config
        child = dict(os.environ) if cfg.inherit_env else {}
        telemetry = current_telemetry()  # PLUGIN_DI_OTEL=1, unless the plugin's env says not
        child.update(telemetry.child_env() if telemetry is not None else {})
        child.update(cfg.env)
        child[cfg.magic_cookie_key] = cfg.magic_cookie_value
        child[plugin_env.PROTOCOL_VERSIONS] = ",".join(str(v) for v in cfg.protocol_versions)
        child[plugin_env.LAUNCH_SECRET] = self.secret
        if cfg.require_auth:  # callers must send the secret (plugin_di.plugin.security)
            child[REQUIRE_AUTH] = "1"
        child[plugin_env.PLUGIN_NAME] = cfg.name
        if cfg.host_url:
            child[plugin_env.HOST_URL] = cfg.host_url
            if cfg.join_token:
                child[plugin_env.JOIN_TOKEN] = cfg.join_token
            elif cfg.admission is not None:
                child[plugin_env.JOIN_TOKEN] = self.secret
        if self._socket_dir:
            child[plugin_env.UNIX_SOCKET_DIR] = self._socket_dir
        if self.host_cert is not None:
            child[plugin_env.CLIENT_CERT] = self.host_cert.cert_pem.decode("ascii")
        child.setdefault("PYTHONUNBUFFERED", "1")
        return child

    async def start(self) -> HandshakeLine:
        """Spawn the process and wait for its handshake line, up to ``start_timeout``.

        On any failure (exit, timeout, bad line, cancellation) the process is killed
        and reaped before the error propagates.
        """
        if self._proc is not None:
            raise RuntimeError(f"plugin {self.name!r} was already started")
        cfg = self.config
        if cfg.unix_socket:
            self._socket_dir = tempfile.mkdtemp(prefix=f"plugin-di-{cfg.name}-")
        if cfg.host_url and cfg.admission is not None and not cfg.join_token:
            self._forget_admission = cfg.admission.expect_launch(
                self.secret, cfg.name, cfg.provides
            )
        pipe_r, self._pipe_w = os.pipe()
        from plugin_di.launch.zygote import ZygoteError

        env = {**self.child_env(), plugin_env.PARENT_PIPE_FD: str(pipe_r)}
        try:
            if cfg.zygote is not None:
                self._proc = await cfg.zygote.spawn(
                    cfg.command, env=env, cwd=cfg.cwd, pass_fds=(pipe_r,), limit=_READ_LIMIT
                )
            if self._proc is None:
                self._proc = await asyncio.create_subprocess_exec(
                    *cfg.command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=env,
                    cwd=cfg.cwd,
                    pass_fds=(pipe_r,),
                    # Its own process group (killpg reaches its children). A new session does
                    # it on every loop: uvloop has no process_group argument.
                    start_new_session=True,
                    limit=_READ_LIMIT,
                )
        except (OSError, ZygoteError) as exc:
            self._cleanup_files()
            raise PluginStartError(
                cfg.name,
                f"cannot execute: {exc}",
                command=cfg.command,
                exit_code=None,
                stderr_tail=[],
            ) from exc
        finally:
            os.close(pipe_r)
        assert self._proc.stderr is not None
        self._readers.append(asyncio.create_task(self._pump(self._proc.stderr, "stderr")))
        try:
            line = await self._read_handshake()
            self._handshake = self._check_handshake(line)
        except BaseException:
            await self._kill_now()
            raise
        finally:
            self._output.release()
        assert self._proc.stdout is not None
        self._readers.append(asyncio.create_task(self._pump(self._proc.stdout, "stdout")))
        return self._handshake

    async def _read_handshake(self) -> str:
        assert self._proc is not None
        assert self._proc.stdout is not None
        read = asyncio.ensure_future(self._proc.stdout.readline())
        timer = asyncio.ensure_future(self._clock.sleep(self.config.start_timeout))
        try:
            await asyncio.wait({read, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (read, timer):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        if not read.done() or read.cancelled():
            await self._kill_now()
            raise self._start_error(
                f"no handshake line within {self.config.start_timeout:g} s (plugin_start_timeout)"
            )
        try:
            raw = read.result()
        except (ValueError, asyncio.LimitOverrunError):
            await self._kill_now()
            raise self._start_error(
                "first stdout line is too long to be a handshake line"
            ) from None
        if not raw:
            await self._reap_after_eof()
            raise self._start_error("exited before printing its handshake line")
        return raw.decode(errors="replace").strip()

    def _check_handshake(self, line: str) -> HandshakeLine:
        try:
            parsed = HandshakeLine.parse(line)
        except HandshakeLineError as exc:
            raise self._start_error(f"{exc} (stdout is reserved for the handshake line)") from None
        if parsed.core_version != plugin_env.CORE_PROTOCOL_VERSION:
            raise self._start_error(
                f"core protocol version {parsed.core_version}, host speaks "
                f"{plugin_env.CORE_PROTOCOL_VERSION}"
            )
        if parsed.app_version not in self.config.protocol_versions:
            offered = ", ".join(str(v) for v in self.config.protocol_versions)
            raise self._start_error(
                f"app protocol version {parsed.app_version} is not one the host offers "
                f"({offered}); rebuild the plugin or the host against a common version"
            )
        return parsed

    def _start_error(self, reason: str) -> PluginStartError:
        crashed = self.returncode not in (None, 0)
        return PluginStartError(
            self.name,
            reason,
            command=self.config.command,
            exit_code=self.returncode,
            stderr_tail=self._output.claim(),
            hint=_CRASHED_HINT if crashed else PluginStartError.DEFAULT_HINT,
        )

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        while True:
            try:
                raw = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):
                raw = await stream.read(_READ_LIMIT)
            if not raw:
                return
            self._output.line(name, raw.decode(errors="replace").rstrip("\r\n"))

    async def _reap_after_eof(self) -> None:
        assert self._proc is not None
        if not await self._wait_exit(self.config.kill_timeout):
            await self._kill_now()
            return
        await self._drain_readers()
        self._cleanup_files()

    async def wait(self) -> int:
        """Wait until the process exits; its exit code (negative: killed by that signal)."""
        if self._proc is None:
            raise RuntimeError(f"plugin {self.name!r} has not started")
        return await self._proc.wait()

    async def _wait_exit(self, seconds: float) -> bool:
        assert self._proc is not None
        if self._proc.returncode is not None:
            return True
        waiter = asyncio.ensure_future(self._proc.wait())
        timer = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()
        return self._proc.returncode is not None or (waiter.done() and not waiter.cancelled())

    def _signal_group(self, signum: int) -> None:
        assert self._proc is not None
        if self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signum)

    async def _kill_now(self) -> None:
        if self._proc is None:
            return
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await self._proc.wait()
        await self._drain_readers()
        self._cleanup_files()

    async def stop(self, shutdown: ShutdownCall | None = None) -> int | None:
        """Stop: ``shutdown(grace)`` and wait the grace period, then SIGTERM, then SIGKILL.

        Always reaps the process. Safe to call more than once; returns the exit code.
        """
        proc = self._proc
        if proc is None:
            return None
        if self._stopped:
            await self._kill_now()
            return proc.returncode
        self._stopped = True
        try:
            grace = self.config.shutdown_grace
            if proc.returncode is None and shutdown is not None and grace > 0:
                asked = await self._ask_shutdown(shutdown, grace)
                if asked:
                    await self._wait_exit(grace)
            if proc.returncode is None:
                self._signal_group(signal.SIGTERM)
                await self._wait_exit(self.config.kill_timeout)
        finally:
            await self._kill_now()
        return proc.returncode

    async def _ask_shutdown(self, shutdown: ShutdownCall, grace: float) -> bool:
        call = asyncio.ensure_future(shutdown(grace))
        timer = asyncio.ensure_future(self._clock.sleep(min(grace, self.config.kill_timeout)))
        try:
            await asyncio.wait({call, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not call.done():
                call.cancel()  # the client may turn it into ConnectError(CANCELED): retrieved
                call.add_done_callback(_retrieve_outcome)
        if call.done() and not call.cancelled() and call.exception() is None:
            return True
        self._logger.debug("plugin %r did not accept Shutdown; sending SIGTERM", self.name)
        return False

    async def _drain_readers(self) -> None:
        readers, self._readers = self._readers, []
        if not readers:
            return
        # A grandchild that inherited stdout can keep the pipe open after the plugin exits.
        _, pending = await asyncio.wait(readers, timeout=_DRAIN_SECONDS)
        for task in pending:
            task.cancel()
        for task in readers:
            with contextlib.suppress(BaseException):
                await task

    def _cleanup_files(self) -> None:
        """Release what this launch holds: the parent pipe, the socket directory and the
        host's admission of its secret."""
        if self._forget_admission is not None:
            self._forget_admission()
            self._forget_admission = None
        if self._pipe_w is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe_w)
            self._pipe_w = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


def _retrieve_outcome(future: asyncio.Future[object]) -> None:
    """Mark a given-up future's outcome as seen (asyncio logs an unretrieved exception)."""
    if not future.cancelled():
        future.exception()
