"""Fakes for plugin providers: what a plugin provider's ``override`` accepts besides a provider.

A plugin provider hands its dependents the generated client of the plugin's service, so a
test replaces the plugin, not the client provider::

    container.kv.override(FakeKV())         # a fake implementation: served in memory,
                                            # through the same generated client
    container.kv.override(FakeKVClient())   # a fake client: handed to dependents as is
    container.kv.override(other_plugin)     # a `Plugin`: served in memory
    container.kv.override(some_handle)      # a `PluginHandle`: used as is

`plugin_di.testing.override` and the ``di_override`` fixture accept the same values. An
object is told apart by what it is (a subclass of the generated service protocol, e.g.
``KVService``, is an implementation; an instance of the generated client class is a
client), else by its methods: an implementation's take ``(request, ctx)``, a client's
``(request)`` with keyword options. Wrap it in `FakeImpl` or `FakeClient` to say which.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NoReturn

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.launch.events import (
    EmitFn,
    HealthState,
    PluginHealth,
    PluginStarted,
    PluginStopped,
    discard,
)
from plugin_di.launch.handle import ClientT, PluginHandle
from plugin_di.launch.inmemory import InMemoryHandle
from plugin_di.plugin.definition import Plugin, Service
from plugin_di.rpc.interceptors import InterceptorChain

__all__ = ["FakeClient", "FakeClientHandle", "FakeImpl", "handle_factory"]

Kind = Literal["impl", "client"]
HandleFactory = Callable[..., PluginHandle]
"""Called with ``chain=`` and ``emit=`` (as the plugin providers' factories are)."""


@dataclass(frozen=True)
class FakeImpl:
    """``impl`` is a fake implementation of the plugin's service(s), served in memory.

    The methods it lacks answer UNIMPLEMENTED, as a generated service base class does.
    """

    impl: object


@dataclass(frozen=True)
class FakeClient:
    """``client`` is a fake client, given as is to whatever needs the plugin's client."""

    client: object


def handle_factory(plugin: Plugin, fake: object) -> HandleFactory:
    """What builds the handle standing for ``plugin`` when it is overridden by ``fake``.

    Raises TypeError when ``fake`` is neither an implementation nor a client of the
    plugin's services.
    """
    if isinstance(fake, Plugin):
        return partial(InMemoryHandle, fake)
    if isinstance(fake, FakeImpl):
        return _impl_factory(plugin, fake.impl, _services_of(plugin, fake.impl) or plugin.services)
    if isinstance(fake, FakeClient):
        covered = _services_of(plugin, fake.client) or plugin.services
        return partial(FakeClientHandle, plugin, fake.client, [s.client for s in covered])
    kind, covered = _classify(plugin, fake)
    if kind == "impl":
        return _impl_factory(plugin, fake, covered)
    return partial(FakeClientHandle, plugin, fake, [s.client for s in covered])


# -- telling an implementation from a client ---------------------------------------------


def _classify(plugin: Plugin, fake: object) -> tuple[Kind, list[Service[Any]]]:
    """Whether ``fake`` implements or calls the plugin's services, and which of them."""
    for service in plugin.services:
        if isinstance(fake, service.client):
            return "client", [service]
        protocol = _protocol(service)
        if protocol is not None and protocol in type(fake).__mro__:
            return "impl", [service]
    covered = _services_of(plugin, fake)
    if not covered:
        _refuse(plugin, fake, "it has none of the services' methods")
    kinds = {
        _kind_of(getattr(fake, name))
        for service in covered
        for name in _method_names(service)
        if callable(getattr(fake, name, None))
    }
    kinds.discard(None)  # a method that takes anything says nothing
    if kinds == {"impl"}:
        return "impl", covered
    if kinds == {"client"}:
        return "client", covered
    _refuse(plugin, fake, "its methods do not say whether it is one or the other")


def _kind_of(method: Callable[..., object]) -> Kind | None:
    """``impl`` for ``(request, ctx)``, ``client`` for ``(request, *, ...)``, else None.

    Counted: the positional parameters without a default (a method with ``ctx=None`` can be
    called as a client is, so it is one).
    """
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = sum(1 for p in parameters if p.kind in positional and p.default is p.empty)
    if required == 2:
        return "impl"
    return "client" if required == 1 else None


def _services_of(plugin: Plugin, fake: object) -> list[Service[Any]]:
    """The services of which ``fake`` has at least one method."""
    return [
        service
        for service in plugin.services
        if any(callable(getattr(fake, name, None)) for name in _method_names(service))
    ]


def _protocol(service: Service[Any]) -> type | None:
    """The generated service protocol (``KVService`` beside ``KVServiceClient``), if found."""
    module = sys.modules.get(service.client.__module__)
    found = getattr(module, service.client.__name__.removesuffix("Client"), None)
    return found if isinstance(found, type) else None


def _method_names(service: Service[Any]) -> list[str]:
    """The Python names of the service's methods: those its generated client defines."""
    return [
        name
        for name, value in vars(service.client).items()
        if callable(value) and not name.startswith("_")
    ]


def _refuse(plugin: Plugin, fake: object, why: str) -> NoReturn:
    service = plugin.services[0]
    names = _method_names(service)
    example = names[0] if names else "method"
    raise TypeError(
        f"override of plugin {plugin.name!r}: {type(fake).__name__} is neither a fake "
        f"implementation nor a fake client of {', '.join(s.full_name for s in plugin.services)} "
        f"({why}). An implementation has the service's methods taking (request, ctx), e.g. "
        f"`async def {example}(self, request, ctx)`; a client has them taking (request), e.g. "
        f"`async def {example}(self, request)`. Wrap it in plugin_di.testing.FakeImpl(...) "
        f"or FakeClient(...) to say which, or pass a Plugin, a PluginHandle or a provider."
    )


# -- a fake implementation: a real in-memory plugin ------------------------------------------


def _impl_factory(plugin: Plugin, impl: object, covered: Sequence[Service[Any]]) -> HandleFactory:
    services = [
        dataclasses.replace(s, impl=_Unimplemented(impl, s.full_name, _method_names(s)))
        for s in covered
    ]
    fake = dataclasses.replace(plugin, services=services)
    return partial(InMemoryHandle, fake)


class _Unimplemented:
    """``impl``, whose missing service methods raise UNIMPLEMENTED (as a generated base does)."""

    def __init__(self, impl: object, service: str, methods: Sequence[str]) -> None:
        self._impl = impl
        self._service = service
        self._methods = frozenset(methods)

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._impl, name)
        except AttributeError:
            if name not in self._methods:
                raise
        return partial(_unimplemented, f"{self._service}.{name}", type(self._impl).__name__)


def _unimplemented(method: str, fake: str, *args: object) -> NoReturn:
    raise ConnectError(Code.UNIMPLEMENTED, f"the fake {fake} does not implement {method}")


# -- a fake client -------------------------------------------------------------------------


class FakeClientHandle(PluginHandle):
    """A plugin whose client is a given object: dependents get ``client`` itself."""

    placement = "fake"

    def __init__(
        self,
        plugin: Plugin,
        client: object,
        stands_for: Sequence[type[Any]],
        *,
        chain: InterceptorChain | None = None,
        emit: EmitFn = discard,
    ) -> None:
        super().__init__(plugin, chain=chain, emit=emit)
        self.fake = client
        self.stands_for = tuple(stands_for)
        self._running = False

    @property
    def url(self) -> str:
        return "fake:client"

    def _client(self, client_cls: type[ClientT]) -> ClientT:
        if client_cls not in self.stands_for:
            raise TypeError(
                f"plugin {self.name!r} is overridden by a fake client "
                f"({type(self.fake).__name__}) of {', '.join(c.__name__ for c in self.stands_for)}"
                f", not of {client_cls.__name__}"
            )
        client: ClientT = self.fake  # type: ignore[assignment]  # a fake stands in for it
        return client

    async def start(self) -> None:
        self._running = True
        self.emit(PluginStarted(self.name, url=self.url, placement=self.placement))

    async def stop(self) -> None:
        if self._running:
            self._running = False
            self.emit(PluginStopped(self.name))

    async def health(self) -> PluginHealth:
        if self._running:
            return PluginHealth(HealthState.HEALTHY, "fake client")
        return PluginHealth(HealthState.UNHEALTHY, "not started")
