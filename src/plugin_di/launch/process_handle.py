"""Process placement: the plugin runs in a supervised child process.

``start()`` checks the checksum, launches the process, reads its handshake line
and binds its address behind the clients. A crash unbinds it (calls fail with
UNAVAILABLE); a restart binds the new address behind the same client objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from connectrpc.errors import ConnectError
from connectrpc.interceptor import Interceptor

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.launch._control import remote_health, shutdown_call
from plugin_di.launch._endpoint import EndpointClient, Target, close_target, target_for
from plugin_di.launch.checksum import command_file, verify_checksum
from plugin_di.launch.client import PluginClient, PluginClientError
from plugin_di.launch.config import DEFAULT_SUPERVISION, LaunchConfig, Supervision
from plugin_di.launch.events import EmitFn, PluginHealth, discard
from plugin_di.launch.handle import ClientT, PluginHandle
from plugin_di.launch.process import PluginProcess, PluginStartError, ShutdownCall
from plugin_di.launch.supervisor import Supervisor, SupervisorState
from plugin_di.plugin.definition import Plugin
from plugin_di.rpc.interceptors import BearerClient, InterceptorChain


class ProcessHandle(PluginHandle):
    """A plugin launched from ``config.command`` and kept up by a `Supervisor`.

    With ``verify`` (the default), each launch ends with a HandshakeService call that
    checks the magic cookie, the app protocol version and that the process serves
    this plugin; a refusal fails the start like a missing handshake line.

    ``supervision``: the checksum and handshake check of each launch, and what follows a
    crash (`Supervisor`).

    Every client (the dependents' and the launcher's PluginControl calls) sends the
    launch's secret as ``Authorization: Bearer``, innermost, so it wins over a chain's own
    credentials: a plugin started by a launcher accepts only its launcher's calls (see
    `plugin_di.plugin.security`). With ``config.auto_mtls`` the plugin must return its
    certificate in the handshake line; clients pin it and present the launch's host
    certificate.
    """

    placement = "process"

    def __init__(
        self,
        plugin: Plugin,
        config: LaunchConfig,
        *,
        supervision: Supervision = DEFAULT_SUPERVISION,
        clock: Clock = SYSTEM_CLOCK,
        interceptors: Iterable[Interceptor] = (),
        chain: InterceptorChain | None = None,
        emit: EmitFn = discard,
        target_factory: Callable[..., Target] = target_for,
    ) -> None:
        super().__init__(plugin, interceptors=interceptors, chain=chain, emit=emit)
        self.config = config
        self.checksum = supervision.checksum
        self.verify = supervision.verify
        self._secret: str | None = None
        self.endpoint = EndpointClient(plugin.name, auth=[BearerClient(lambda: self._secret)])
        self._clock = clock
        self._launched = False
        self._target_factory = target_factory
        self.supervisor = Supervisor(
            plugin.name,
            self._launch,
            supervision=supervision,
            clock=clock,
            emit=lambda event: self.emit(event),
            on_up=self._on_up,
            on_down=self._on_down,
            shutdown_call=self._shutdown_call,
        )

    @property
    def url(self) -> str:
        process = self.supervisor.process
        return process.url if process is not None else ""

    @property
    def pid(self) -> int | None:
        process = self.supervisor.process
        return process.pid if process is not None else None

    def _client(self, client_cls: type[ClientT]) -> ClientT:
        return self.endpoint.client(client_cls, interceptors=self.client_interceptors())

    async def _launch(self) -> PluginProcess:
        if self.checksum:
            verify_checksum(self.name, command_file(self.config.command), self.checksum)
        # The first start's failure reaches the caller with the plugin's stderr in it; a
        # restart's is only an event, so its output is logged as it comes.
        first, self._launched = not self._launched, True
        process = PluginProcess(self.config, clock=self._clock, hold_start_output=first)
        await process.start()
        if self.config.auto_mtls and not process.handshake.cert_der:
            await process.stop()
            raise PluginStartError(
                self.name,
                "auto_mtls is on but the handshake line carries no certificate",
                command=self.config.command,
                exit_code=process.returncode,
                stderr_tail=process.stderr_tail,
                hint="serve the plugin with plugin_di.serve (it answers PLUGIN_CLIENT_CERT), "
                "or launch it with auto_mtls=False",
            )
        if self.verify:
            try:
                await self._handshake(process)
            except BaseException:
                await process.stop()
                raise
        return process

    async def _handshake(self, process: PluginProcess) -> None:
        """HandshakeService: same cookie, a common app version, and this plugin served."""
        tls = process.client_tls()
        client = PluginClient(
            process.url,
            [self.plugin],
            magic_cookie_key=self.config.magic_cookie_key,
            magic_cookie_value=self.config.magic_cookie_value,
            app_protocol_versions=self.config.protocol_versions,
            tls=tls,
            timeout_ms=int(self.config.start_timeout * 1000),
        )
        try:
            await client.connect()
        except (ConnectError, PluginClientError) as exc:
            message = exc.message if isinstance(exc, ConnectError) else str(exc)
            raise PluginStartError(
                self.name,
                f"handshake refused: {message}",
                command=self.config.command,
                exit_code=process.returncode,
                stderr_tail=process.stderr_tail,
                hint="check that the command serves this plugin, with the same magic cookie",
            ) from exc
        finally:
            await client.close()

    async def _on_up(self, process: PluginProcess) -> None:
        target = self._target_factory(
            process.url, process.handshake.cert_der, tls=process.client_tls()
        )
        self._secret = process.secret
        await close_target(self.endpoint.bind(target))
        self.reset_breakers()

    async def _on_down(self, what: str) -> None:
        policy = self.supervisor.policy.value
        reason = f"its process ended ({what}; restart policy {policy})"
        await close_target(self.endpoint.unbind(reason))

    def _shutdown_call(self, process: PluginProcess) -> ShutdownCall:
        return shutdown_call(self.endpoint)

    async def start(self) -> None:
        """Launch the plugin; on failure nothing is left running and the error says why."""
        await self.supervisor.start()

    async def stop(self) -> None:
        """Shutdown RPC with the grace period, then SIGTERM, then SIGKILL; always reaped."""
        await self.supervisor.stop()
        await close_target(self.endpoint.unbind("stopped"))

    async def health(self) -> PluginHealth:
        if self.supervisor.state is SupervisorState.RUNNING:
            health = await remote_health(self.endpoint)
            where = f"pid {self.pid} at {self.url}"
            reason = f"{health.reason}; {where}" if health.reason else where
            return self.with_breakers(PluginHealth(health.state, reason))
        return self.with_breakers(self.supervisor.health)
