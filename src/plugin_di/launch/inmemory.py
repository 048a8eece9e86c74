"""In-memory placement: the plugin's implementation runs in this process, no socket."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectrpc.interceptor import Interceptor

from plugin_di.launch.events import EmitFn, HealthState, PluginHealth, PluginStarted, discard
from plugin_di.launch.events import PluginStopped as _Stopped
from plugin_di.launch.handle import ClientT, PluginHandle
from plugin_di.plugin.definition import Plugin
from plugin_di.plugin.inprocess import Mode, inprocess_client


class InMemoryHandle(PluginHandle):
    """Clients dispatch to the implementation directly (``direct``) or through ASGI (``asgi``)."""

    placement = "in-memory"

    def __init__(
        self,
        plugin: Plugin,
        *,
        mode: Mode = "direct",
        interceptors: Iterable[Interceptor] = (),
        server_interceptors: Iterable[Interceptor] = (),
        emit: EmitFn = discard,
    ) -> None:
        super().__init__(plugin, interceptors=interceptors, emit=emit)
        self.mode: Mode = mode
        self.server_interceptors = tuple(server_interceptors)
        self._clients: dict[type[Any], Any] = {}
        self._running = False

    @property
    def url(self) -> str:
        return f"in-memory:{self.mode}"

    def _client(self, client_cls: type[ClientT]) -> ClientT:
        existing = self._clients.get(client_cls)
        if existing is None:
            existing = inprocess_client(
                self.plugin,
                client_cls,
                mode=self.mode,
                interceptors=self.interceptors,
                server_interceptors=self.server_interceptors,
            )
            self._clients[client_cls] = existing
        result: ClientT = existing
        return result

    async def start(self) -> None:
        self._running = True
        self.emit(PluginStarted(self.name, url=self.url, placement=self.placement))

    async def stop(self) -> None:
        if self._running:
            self._running = False
            self.emit(_Stopped(self.name))

    async def health(self) -> PluginHealth:
        if self._running:
            return PluginHealth(HealthState.HEALTHY, f"in-memory ({self.mode})")
        return PluginHealth(HealthState.UNHEALTHY, "not started")
