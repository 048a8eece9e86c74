"""From what the user passes to ``App`` to a container instance, its name and its roots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dependency_injector import containers, providers

from plugin_di.di._markers import AppObject
from plugin_di.di.errors import UnknownProviderError
from plugin_di.di.graph import ProviderGraph, walk_names


def instantiate(container: Any) -> tuple[Any, type | None]:
    """A container instance, and the declarative class it comes from (None if dynamic).

    A ``DeclarativeContainer`` class is instantiated, so each App has its own singletons.
    """
    if isinstance(container, type) and issubclass(container, containers.DeclarativeContainer):
        return container(), container
    if containers.is_container(container) and not isinstance(container, type):
        parent = getattr(container, "declarative_parent", None)
        return container, parent if isinstance(parent, type) else None
    raise TypeError(
        "App needs a dependency-injector container: a DeclarativeContainer class or a "
        f"container instance, not {type(container).__name__} ({container!r:.60})"
    )


def container_name(container: Any, declared: type | None) -> str:
    if declared is not None:
        return declared.__name__
    return type(container).__name__


def bind_markers(
    graph: ProviderGraph, values: Sequence[tuple[type, object]], objects: Mapping[type, object]
) -> None:
    """Bind the markers of ``graph`` to the app's objects.

    Every unbound ``providers.Dependency(instance_of=K)`` gets the first of ``values``
    whose type is K or a subclass: this is how `LifecycleProvider`, `ShutdownerProvider`
    and `EmitterProvider` (and plain Dependency markers of those types) receive them.
    Every `AppObject` marker, named or inline, gets ``objects[marker.kind]``, even one
    that an earlier App bound.
    """
    for provider in graph.providers:
        if isinstance(provider, AppObject):
            _bind(provider, objects)
            continue
        if not isinstance(provider, providers.Dependency) or provider.is_defined:
            continue
        wanted = provider.instance_of
        if not isinstance(wanted, type) or wanted is object:
            continue
        for kind, value in values:
            if issubclass(kind, wanted):
                provider.override(providers.Object(value))
                break
    for marker in graph.markers:
        _bind(marker, objects)


def _bind(marker: AppObject, objects: Mapping[type, object]) -> None:
    marker.reset_override()
    marker.override(providers.Object(objects.get(marker.kind)))


def resolve_roots(
    graph: ProviderGraph, invoke: Sequence[object], declared: type | None
) -> list[int]:
    """Node indices of the invoke roots: providers (of the instance or of its class) or names."""
    roots: list[int] = []
    class_names: dict[int, str] | None = None
    prefix = graph.root + "."
    for item in invoke:
        if isinstance(item, str):
            found = graph.index.get(item if item.startswith(prefix) else prefix + item)
        else:
            found = graph.find(item)
            if found is None and declared is not None:  # a provider of the class, not the copy
                if class_names is None:
                    class_names = {id(p): n for n, p, _, _ in walk_names(declared, graph.root)}
                name = class_names.get(id(item))
                found = graph.index.get(name) if name else None
        if found is None:
            example = next(iter(graph.index), prefix + "x")
            raise UnknownProviderError(
                f"invoke: {item!r} is not a provider of {graph.root}; "
                f"pass one of its providers or a dotted name such as {example!r}"
            )
        roots.append(found)
    return roots
