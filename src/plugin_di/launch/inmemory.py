"""In-memory placement: the plugin's implementation runs in this process, no socket."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import Any

from connectrpc.interceptor import Interceptor

from plugin_di.launch.events import (
    EmitFn,
    HealthState,
    PluginHealth,
    PluginStarted,
    PluginStopped,
    discard,
)
from plugin_di.launch.handle import ClientT, PluginHandle
from plugin_di.plugin.definition import Plugin
from plugin_di.plugin.inprocess import Mode, inprocess_client
from plugin_di.rpc.interceptors import InterceptorChain, check_interceptors

logger = logging.getLogger(__name__)


class InMemoryHandle(PluginHandle):
    """Clients dispatch to the implementation directly (``direct``) or through ASGI (``asgi``).

    The server side runs the chain's server interceptors (header limits, auth, rate limit,
    its extras), then ``server_interceptors``, as a served plugin would.
    """

    placement = "in-memory"

    def __init__(
        self,
        plugin: Plugin,
        *,
        mode: Mode = "direct",
        interceptors: Iterable[Interceptor] = (),
        server_interceptors: Iterable[Interceptor] = (),
        chain: InterceptorChain | None = None,
        emit: EmitFn = discard,
    ) -> None:
        super().__init__(plugin, interceptors=interceptors, chain=chain, emit=emit)
        self.mode: Mode = mode
        self.server_interceptors = tuple(check_interceptors(server_interceptors))
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
                interceptors=self.client_interceptors(),
                server_interceptors=[*self.chain.server_interceptors(), *self.server_interceptors],
            )
            self._clients[client_cls] = existing
        result: ClientT = existing
        return result

    async def start(self) -> None:
        self._running = True
        self.emit(PluginStarted(self.name, url=self.url, placement=self.placement))

    async def stop(self) -> None:
        """As a served plugin does on stop: each implementation's ``on_shutdown()``, if any."""
        if not self._running:
            return
        self._running = False
        for service in self.plugin.services:
            hook = getattr(service.impl, "on_shutdown", None)
            if hook is None:
                continue
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("on_shutdown of plugin %r failed; stopping anyway", self.name)
        self.emit(PluginStopped(self.name))

    async def health(self) -> PluginHealth:
        if self._running:
            return self.with_breakers(PluginHealth(HealthState.HEALTHY, f"in-memory ({self.mode})"))
        return PluginHealth(HealthState.UNHEALTHY, "not started")
