"""What every placement of a plugin offers: typed clients, start, stop and health.

A handle is built before the app starts and hands out client objects at once;
``start()`` makes them work (for a process plugin: launches it and binds the
endpoint) and ``stop()`` ends it. Dependents only ever see the generated client
class, so moving a plugin between placements changes nothing for them.

Every client a handle builds gets the handle's `InterceptorChain` (outermost first:
the handle's ``interceptors``, then the chain's client list: its extras, credentials,
circuit breaker, retry; see `plugin_di.rpc.interceptors.chain`). The handle keeps its
own copy of the chain (`own_chain`), so a chain shared by several plugins as a
container-wide default still gives each plugin its own breakers; their state changes
become `PluginBreakerChanged` events, and health is DEGRADED while one is open.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, TypeVar

from connectrpc.client import ConnectClient
from connectrpc.interceptor import Interceptor

from plugin_di.launch.events import (
    EmitFn,
    HealthState,
    PluginBreakerChanged,
    PluginEvent,
    PluginHealth,
    discard,
)
from plugin_di.plugin.definition import Plugin
from plugin_di.rpc.interceptors import (
    BearerClient,
    CircuitState,
    ClientAuth,
    InterceptorChain,
    check_interceptors,
)
from plugin_di.rpc.interceptors.chain import BreakerStateChange

ClientT = TypeVar("ClientT", bound=ConnectClient)


class PluginHandle(ABC):
    """One plugin in one placement (``in-memory``, ``process`` or ``remote``)."""

    placement: str = ""

    def __init__(
        self,
        plugin: Plugin,
        *,
        interceptors: Iterable[Interceptor] = (),
        chain: InterceptorChain | None = None,
        emit: EmitFn = discard,
    ) -> None:
        self.plugin = plugin
        self.interceptors = tuple(check_interceptors(interceptors))
        self._emit = emit
        self.chain = own_chain(chain, self._breaker_changed)

    def _breaker_changed(self, endpoint: str, old: CircuitState, new: CircuitState) -> None:
        self.emit(PluginBreakerChanged(self.name, endpoint, str(old), str(new)))

    @property
    def breaker_key(self) -> str:
        """The endpoint name of this plugin's clients in its chain (its breaker's key)."""
        return f"{self.placement}://{self.name}"

    def client_interceptors(self) -> list[Any]:
        """The client interceptors every client of this plugin gets, outermost first."""
        return [*self.interceptors, *self.chain.client_interceptors(self.breaker_key)]

    def credential_interceptors(self) -> list[Any]:
        """Just the chain's credentials (``ClientAuth`` / ``BearerClient``), for the handle's
        own calls such as PluginControl health checks."""
        chain = self.chain
        found: list[Any] = []
        if chain.credentials is not None:
            found.append(ClientAuth(chain.credentials))
        if chain.bearer_token is not None:
            found.append(
                BearerClient(
                    chain.bearer_token, header=chain.bearer_header, prefix=chain.bearer_prefix
                )
            )
        return found

    def open_breakers(self) -> list[str]:
        """The endpoints whose circuit is open (or half open) now."""
        return [
            name
            for name, breaker in self.chain.breakers.items()
            if breaker.state is not CircuitState.CLOSED
        ]

    def reset_breakers(self) -> None:
        """Close this plugin's breakers: a new endpoint was bound (the plugin restarted), so
        the failures of the old one say nothing about it."""
        for breaker in self.chain.breakers.values():
            breaker.reset()

    def with_breakers(self, health: PluginHealth) -> PluginHealth:
        """``health``, DEGRADED while a breaker is not closed (an UNHEALTHY stays UNHEALTHY)."""
        tripped = self.open_breakers()
        if not tripped or health.state is HealthState.UNHEALTHY:
            return health
        why = f"circuit open for {', '.join(tripped)}"
        reason = f"{why}; {health.reason}" if health.reason else why
        return PluginHealth(HealthState.DEGRADED, reason)

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


def own_chain(
    chain: InterceptorChain | None,
    on_change: BreakerStateChange,
) -> InterceptorChain:
    """A plugin's own copy of ``chain`` (default: ``InterceptorChain()``): same settings and
    rate limiter, its own breakers, whose changes go to ``on_change`` (and to the callback the
    chain already had)."""
    template = chain if chain is not None else InterceptorChain()
    if template.sync:
        raise TypeError(
            "plugin handles build async clients: give them an InterceptorChain with sync=False"
        )
    previous = template.on_breaker_state_change

    def notify(endpoint: str, old: CircuitState, new: CircuitState) -> None:
        on_change(endpoint, old, new)
        if previous is not None:
            previous(endpoint, old, new)

    return dataclasses.replace(template, on_breaker_state_change=notify)
