"""The host platform as a provider of the app: a `Host` on loopback, with the logger on it.

`HostPlatform` starts the `Host` (registry, router, broker, health tracking) and
adds the app's in-memory logger to it as a platform-managed provider of the
service type ``logger``: the host reaches the logger's ASGI app and the logger
reaches the host with no socket. Process plugins get ``url`` as
``PLUGIN_DI_HOST_URL`` and join the host themselves (self-registering).

The container builds every provider before it starts any, so the child
processes' ``host_url`` is read before the host serves: the host takes its
loopback socket when it is built (``Host(bind=...)``), and connections wait in
the socket's backlog until it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from plugin_di.host.server import Host
from plugin_di.host.tracker import STATE_NAMES, HealthReport
from plugin_di.launch.inmemory import InMemoryHandle
from plugin_di.plugin import HostSession, follow_identity
from plugin_di.plugin.health import HealthState
from plugin_di.plugin.server import PluginServer

WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class HealthEvent:
    """A health report as the host received it."""

    runtime_id: str
    state: str
    reason: str


class HostPlatform:
    """The app's host platform; ``url`` is known when built, served from ``start()`` on."""

    def __init__(self, logger: InMemoryHandle, host: Host | None = None) -> None:
        self.host = host if host is not None else Host.from_settings(bind="127.0.0.1:0")
        self.url = self.host.url
        self.logger = logger
        self._logger_server = PluginServer(logger.plugin, reflection=False, grace_period=1.0)
        self._logger_session: asyncio.Task[HostSession] | None = None
        self.logger_id = ""
        self.health_events: list[HealthEvent] = []
        self._reported = asyncio.Event()
        self.host.tracker.add_listener(self._on_health)

    def _on_health(
        self, runtime_id: str, old: HealthReport | None, new: HealthReport | None
    ) -> None:
        if new is not None:
            state = STATE_NAMES.get(new.state, str(new.state))
            self.health_events.append(HealthEvent(runtime_id, state, new.reason))
        self._reported.set()

    async def start(self) -> None:
        """Serve the host on the reserved port, then add the in-memory logger to it."""
        await self.host.start()
        server = self._logger_server

        def mirror(state: int, reason: str, missing: Sequence[str]) -> None:
            server.health.report(HealthState(state), reason, missing)

        self._logger_session = asyncio.create_task(
            follow_identity(
                server.identity,
                self.logger.plugin,
                http_client=self.host.in_memory_client(),
                on_report=mirror,
            )
        )
        try:
            self.logger_id = await self.host.platform.add_plugin(
                server.app, self_id=self.logger.plugin.name, health_timeout=WAIT_SECONDS
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Take the logger off the host, then stop the host."""
        if self.logger_id:
            with contextlib.suppress(Exception):
                await self.host.platform.remove_plugin(self.logger_id, grace=1.0)
            self.logger_id = ""
        task, self._logger_session = self._logger_session, None
        if task is not None:
            if task.done() and not task.cancelled() and task.exception() is None:
                await task.result().stop()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.host.stop()

    def runtime_ids(self, self_id: str) -> list[str]:
        """Runtime ids of the live plugins that joined as ``self_id``."""
        return [r.runtime_id for r in self.host.registry.store.plugins() if r.self_id == self_id]

    def routed_url(self, runtime_id: str, service_type: str) -> str:
        """The router URL of ``runtime_id``'s ``service_type`` ("" if it registered none)."""
        registration = self.host.registry.registration_of(runtime_id, service_type)
        if registration is None:
            return ""
        return self.host.registry.endpoint(registration).endpoint_url

    async def wait_healthy(self, self_id: str) -> str:
        """The runtime id of ``self_id`` once it has joined and reported HEALTHY.

        Event-driven (woken by each health report); bound it with ``asyncio.timeout``.
        """
        while True:
            for runtime_id in self.runtime_ids(self_id):
                report = self.host.tracker.get(runtime_id)
                if report is not None and STATE_NAMES.get(report.state) == "HEALTHY":
                    return runtime_id
            self._reported.clear()
            await self._reported.wait()
