"""Building the graph: every node constructed once, in start order, its hooks collected.

A node is built by calling its provider. Non-caching providers (Factory, Callable,
Coroutine, ...) are overridden with the built object while the rest of the graph is
built, so every dependent built by the app shares the one instance whose hooks run;
the overrides are removed afterwards, and later calls make fresh, unmanaged objects.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from dependency_injector import providers

from plugin_di.clock import Clock
from plugin_di.di.errors import ProviderBuildError
from plugin_di.di.events import Emitter, ProviderBuilt
from plugin_di.di.graph import ProviderGraph
from plugin_di.di.lifecycle import Hook, Lifecycle, hooks_for, is_awaitable

# providers that are blueprints for objects made later: built only when something needs them
BLUEPRINTS = (providers.Factory, providers.Callable, providers.Coroutine)

# how to build a provider, by its type (remembered: isinstance on providers is slow)
_OVERRIDE, _CACHED, _RESOURCE, _SKIP = range(4)
_HOW: dict[type, int] = {}


def _how(provider: object) -> int:
    kind = type(provider)
    how = _HOW.get(kind)
    if how is None:
        if issubclass(kind, providers.Aggregate):  # cannot be called without arguments
            how = _SKIP
        elif issubclass(kind, providers.Resource):
            how = _RESOURCE
        elif issubclass(
            kind,
            providers.BaseSingleton | providers.Object | providers.Configuration,
        ):
            how = _CACHED  # returns the same object every time: no override needed
        else:
            how = _OVERRIDE
        _HOW[kind] = how
    return how


async def build(
    graph: ProviderGraph,
    order: Sequence[int],
    lifecycle: Lifecycle,
    events: Emitter,
    clock: Clock,
) -> list[list[Hook]]:
    """Build ``order`` (graph indices, dependencies first); return each node's hooks.

    On failure, resources already initialised are shut down and `ProviderBuildError`
    is raised with the original exception chained.
    """
    node_hooks: list[list[Hook]] = []
    overridden: list[providers.Provider[Any]] = []
    resources: list[Any] = []
    hooked: set[int] = set()
    names = graph.names
    verbose = events.wants(ProviderBuilt.level)
    emit = events.emit
    try:
        for i in order:
            provider = graph.providers[i]
            name = names[i]
            how = _how(provider)
            began = clock.now()
            try:
                with lifecycle.building(name):
                    value = None if how == _SKIP else provider()
                    if is_awaitable(value):
                        value = await value
            except Exception as exc:
                emit(ProviderBuilt(name, clock.now() - began, exc))
                raise ProviderBuildError(name, graph.location(i), exc) from exc
            if verbose:
                emit(ProviderBuilt(name, clock.now() - began))
            if how == _OVERRIDE:
                provider.override(providers.Object(value))
                overridden.append(provider)
            hooks: list[Hook] = list(lifecycle.hooks(name))
            if how == _RESOURCE:
                resources.append(provider)
                hooks.insert(0, _resource_hook(provider, name))
            if id(value) not in hooked:
                auto = hooks_for(value)
                if auto is not None:
                    hooked.add(id(value))
                    hooks.append(auto)
            node_hooks.append(hooks)
    except BaseException as exc:
        await _shutdown_resources(resources, exc)
        raise
    finally:
        for provider in reversed(overridden):
            provider.reset_last_overriding()
    return node_hooks


def _resource_hook(provider: Any, name: str) -> Hook:
    """A resource is acquired while the app is built, so its shutdown always runs."""
    return Hook(
        on_stop=provider.shutdown, name=f"{name.rsplit('.', 1)[-1]}.shutdown", always_stop=True
    )


async def _shutdown_resources(
    resources: list[providers.Resource[Any]], error: BaseException
) -> None:
    for resource in reversed(resources):
        try:
            outcome = resource.shutdown()
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            error.add_note(f"while shutting down {resource!r}: {type(exc).__name__}: {exc}")
