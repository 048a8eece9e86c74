"""What every placement of a plugin offers: typed clients, start, stop and health.

A handle is built before the app starts and hands out client objects at once;
``start()`` makes them work (for a process plugin: launches it and binds the
endpoint) and ``stop()`` ends it. Dependents only ever see the generated client
class, so moving a plugin between placements changes nothing for them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TypeVar

from connectrpc.client import ConnectClient
from connectrpc.interceptor import Interceptor

from plugin_di.launch.events import EmitFn, PluginEvent, PluginHealth, discard
from plugin_di.plugin.definition import Plugin

ClientT = TypeVar("ClientT", bound=ConnectClient)


class PluginHandle(ABC):
    """One plugin in one placement (``in-memory``, ``process`` or ``remote``)."""

    placement: str = ""

    def __init__(
        self,
        plugin: Plugin,
        *,
        interceptors: Iterable[Interceptor] = (),
        emit: EmitFn = discard,
    ) -> None:
        self.plugin = plugin
        self.interceptors = tuple(interceptors)
        self._emit = emit

    @property
    def name(self) -> str:
        return self.plugin.name

    def set_emit(self, emit: EmitFn) -> None:
        """Where plugin events go (the lifecycle engine connects its sinks here)."""
        self._emit = emit

    def emit(self, event: PluginEvent) -> None:
        self._emit(event)

    def client(self, client_cls: type[ClientT]) -> ClientT:
        """The typed client of the plugin's service for ``client_cls`` (one per class)."""
        self.plugin.service(client_cls)  # a clear error if the plugin does not serve it
        return self._client(client_cls)

    @abstractmethod
    def _client(self, client_cls: type[ClientT]) -> ClientT: ...

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the plugin is served now (``in-memory:direct`` for in-memory plugins)."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def health(self) -> PluginHealth:
        """The plugin's health as seen from the host."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.placement}>"
