"""The base of the plugin providers: a Singleton of a plugin handle, and its arguments.

A plugin provider's factory gets its plugin and options wrapped in `Kept`, which
container copies share instead of copying, and makes the handle with `make_handle`
once the app's chain and event sink are resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar

from dependency_injector import providers

from plugin_di.di import fakes
from plugin_di.di.events import Emitter
from plugin_di.di.providers_events import emit_to
from plugin_di.launch.handle import ClientT, PluginHandle
from plugin_di.plugin.definition import Plugin
from plugin_di.rpc.interceptors import InterceptorChain

T = TypeVar("T")
HandleT = TypeVar("HandleT", bound=PluginHandle)
EventsArg = providers.Provider[Emitter] | Emitter | None
ChainArg = providers.Provider[InterceptorChain] | InterceptorChain | None


class InterceptorChainProvider(providers.Dependency[InterceptorChain]):
    """A container-wide `InterceptorChain` for the plugin providers (``chain=``).

    ``InterceptorChainProvider()`` yields ``InterceptorChain()`` unless overridden
    (``container.chain.override(InterceptorChain(...))``); pass a chain to set the default.
    """

    def __init__(self, default: InterceptorChain | None = None) -> None:
        chain = default if default is not None else InterceptorChain()
        super().__init__(instance_of=InterceptorChain, default=kept(chain))


class Kept(Generic[T]):
    """A factory argument that container copies share instead of copying: the plugin, its
    implementation, a chain's limiter and clock must stay the objects the user made."""

    def __init__(self, value: T) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict[int, Any]) -> Kept[T]:
        return self


def _value(kept: Kept[T]) -> T:
    return kept.value


def kept(value: Any) -> providers.Provider[Any]:
    """A provider of ``value`` itself (containers deep-copy plain arguments)."""
    return providers.Callable(_value, Kept(value))


def chain_arg(chain: ChainArg) -> ChainArg:
    if chain is None or isinstance(chain, providers.Provider):
        return chain
    return kept(chain)


def _client_of(handle: PluginHandle, client_cls: type[ClientT]) -> ClientT:
    return handle.client(client_cls)


class PluginProvider(providers.Singleton[HandleT]):
    """Base of the plugin providers: a Singleton of a `PluginHandle`."""

    def client(self, client_cls: type[ClientT]) -> providers.Singleton[ClientT]:
        """A provider of the plugin's typed client for ``client_cls``.

        Every call for the same class yields the same client object (the handle
        keeps one per class), which stays valid across restarts of the plugin.
        """
        provider: providers.Singleton[ClientT] = providers.Singleton(_client_of, self, client_cls)
        return provider

    def override(self, provider: object) -> providers.OverridingContext[Any]:
        """Override with a provider, a `PluginHandle`, or a fake (see `plugin_di.di.fakes`).

        A fake implementation, a fake client or another `Plugin` becomes a provider of a
        handle standing for the plugin, built with this provider's chain and events.
        """
        if isinstance(provider, providers.Object) and not isinstance(
            provider.provides, PluginHandle
        ):
            provider = provider.provides  # what plain wrapping (override helpers) made of a fake
        if not isinstance(provider, providers.Provider | PluginHandle):
            make = fakes.handle_factory(self.declared_plugin(), provider)
            kwargs = self.kwargs
            provider = providers.Singleton(
                make_handle, Kept(make), events=kwargs.get("events"), chain=kwargs.get("chain")
            )
        return super().override(provider)

    def declared_plugin(self) -> Plugin:
        """The `Plugin` this provider was declared with."""
        value = getattr(self.args[0], "value", None) if self.args else None
        found = value.args[0] if isinstance(value, partial) and value.args else value
        found = getattr(found, "plugin", found)  # a process plugin's spec carries it
        if not isinstance(found, Plugin):
            raise TypeError(f"{self!r} was declared without a Plugin")
        return found


def make_handle(
    make: Kept[Callable[..., HandleT]],
    events: Emitter | None = None,
    chain: InterceptorChain | None = None,
) -> HandleT:
    """The handle ``make`` builds, with the chain and the event sink resolved."""
    return make.value(chain=chain, emit=emit_to(events))
