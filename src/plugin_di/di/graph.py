"""The provider graph: which named provider needs which, read from dependency-injector.

Every provider reachable by name from the container is a node, named by its path
(``AppContainer.db.pool``; nested containers are modules). Anonymous providers
(inline ``providers.Factory(...)`` arguments, ``.provided`` getters) are not nodes:
their dependencies count as dependencies of the named provider that uses them.
An overridden provider depends on what its last override depends on.

Edges point from a provider to what it needs; `plugin_di.di._plan` orders them.
"""

from __future__ import annotations

import inspect
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from typing import Any

from dependency_injector import containers, providers

from plugin_di.di._markers import AppObject
from plugin_di.di.errors import MissingDependency

Provider = providers.Provider[Any]


class ProviderGraph:
    """Named providers of a container and their dependencies, as index lists.

    ``deps[i]`` are the indices node ``i`` needs. ``origins[i]`` is the declarative
    container class and attribute that declared node ``i`` (for error locations).
    ``markers`` are the inline `AppObject` markers the named providers use.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.names: list[str] = []
        self.providers: list[Provider] = []
        self.origins: list[tuple[type | None, str]] = []
        self.deps: list[list[int]] = []
        self.index: dict[str, int] = {}
        self.markers: list[AppObject] = []
        self._by_id: dict[int, int] = {}

    @classmethod
    def collect(cls, container: Any, root: str) -> ProviderGraph:
        """Read every named provider of ``container`` (nested containers included)."""
        graph = cls(root)
        by_id = graph._by_id
        for name, provider, declared, attr in walk_names(container, root):
            if id(provider) in by_id:
                continue  # an alias of a provider already named
            by_id[id(provider)] = len(graph.names)
            graph.index[name] = len(graph.names)
            graph.names.append(name)
            graph.providers.append(provider)
            graph.origins.append((declared, attr))
        for provider in graph.providers:
            graph.deps.append(_dependencies(provider, by_id, graph.markers))
        return graph

    def __len__(self) -> int:
        return len(self.names)

    def find(self, provider: object) -> int | None:
        """The node index of a provider object, or None."""
        return self._by_id.get(id(provider))

    def location(self, i: int) -> str | None:
        """``file:line`` where node ``i`` was declared, when it can be found."""
        cls, attr = self.origins[i]
        return declared_at(cls, attr) if cls is not None else None

    def kind(self, i: int) -> str:
        return type(self.providers[i]).__name__

    def reachable(self, roots: Sequence[int]) -> list[int]:
        """Nodes reachable from ``roots`` (all nodes when there are no roots), in index order."""
        if not roots:
            return list(range(len(self.names)))
        seen = bytearray(len(self.names))
        stack = list(roots)
        for r in roots:
            seen[r] = 1
        while stack:
            for d in self.deps[stack.pop()]:
                if not seen[d]:
                    seen[d] = 1
                    stack.append(d)
        return [i for i in range(len(self.names)) if seen[i]]

    def missing(self, nodes: Sequence[int], roots: Sequence[int]) -> list[MissingDependency]:
        """Dependencies nothing provides, each with the chain from a root that needs it."""
        absent = [
            i
            for i in nodes
            if isinstance(dep := self.providers[i], providers.Dependency) and not dep.is_defined
        ]
        if not absent:
            return []
        parents = self._parents(nodes, roots)
        found = []
        for i in absent:
            chain = [i]
            while parents.get(chain[-1], -1) >= 0:
                chain.append(parents[chain[-1]])
            kind = getattr(self.providers[i], "instance_of", object)
            instance_of = getattr(kind, "__qualname__", str(kind))
            found.append(
                MissingDependency(
                    name=self.names[i],
                    chain=tuple(self.names[c] for c in reversed(chain)),
                    instance_of=instance_of,
                    location=self.location(i),
                )
            )
        return found

    def _parents(self, nodes: Sequence[int], roots: Sequence[int]) -> dict[int, int]:
        """BFS tree from the roots (or the nodes nothing needs): node -> the node needing it."""
        if not roots:
            needed = {d for i in nodes for d in self.deps[i]}
            roots = [i for i in nodes if i not in needed] or list(nodes[:1])
        parents = dict.fromkeys(roots, -1)
        queue = deque(roots)
        while queue:
            i = queue.popleft()
            for d in self.deps[i]:
                if d not in parents:
                    parents[d] = i
                    queue.append(d)
        return parents


def walk_names(container: Any, root: str) -> Iterator[tuple[str, Provider, type | None, str]]:
    """Every named provider of ``container`` with its path, declaring class and attribute.

    Nested containers (``providers.Container``, ``providers.DependenciesContainer``) are
    walked as modules, breadth first, in declaration order.
    """
    pending: deque[tuple[str, Any, type | None]] = deque()
    pending.append((root, container.providers, _declarative(container)))
    while pending:
        prefix, members, cls = pending.popleft()
        for attr, provider in members.items():
            name = f"{prefix}.{attr}"
            if isinstance(provider, providers.Container):
                inner = provider.container
                pending.append((name, inner.providers, _declarative(inner)))
            elif isinstance(provider, providers.DependenciesContainer):
                pending.append((name, provider.providers, None))
            else:
                yield name, provider, cls, attr


def _dependencies(provider: Provider, by_id: dict[int, int], markers: list[AppObject]) -> list[int]:
    found: list[int] = []
    anonymous: list[Provider] = []
    for p in _direct(provider):
        i = by_id.get(id(p))
        if i is None:
            anonymous.append(p)
        else:
            found.append(i)
    if not anonymous:
        return found if len(found) < 2 else list(dict.fromkeys(found))
    seen: set[int] = set()
    while anonymous:  # look through inline providers to the named ones they use
        p = anonymous.pop()
        if id(p) in seen:
            continue
        seen.add(id(p))
        if isinstance(p, AppObject):
            markers.append(p)
        for q in _direct(p):
            i = by_id.get(id(q))
            if i is None:
                anonymous.append(q)
            else:
                found.append(i)
    return list(dict.fromkeys(found))


def _direct(provider: Provider) -> Iterable[Provider]:
    """What a provider refers to, as dependency-injector reports it (overrides win)."""
    overriding = provider.last_overriding
    if overriding is not None:
        return (overriding,)
    if isinstance(provider, providers.Dependency):
        default = provider.default
        return (default,) if default is not None else ()
    return provider.related


def _declarative(container: Any) -> type | None:
    if isinstance(container, type) and issubclass(container, containers.DeclarativeContainer):
        return container
    parent = getattr(container, "declarative_parent", None)
    return parent if isinstance(parent, type) else None


def declared_at(cls: type, attr: str) -> str | None:
    """``file:line`` of ``attr = ...`` in the body of ``cls`` or the base that declares it."""
    for klass in cls.__mro__:
        own = getattr(klass, "cls_providers", None)
        if isinstance(own, dict) and attr in own:
            return _find_line(klass, attr)
    return _find_line(cls, attr)


@cache
def _find_line(cls: type, attr: str) -> str | None:
    try:
        lines, first = inspect.getsourcelines(cls)
        path = inspect.getsourcefile(cls)
    except (OSError, TypeError):
        return None
    if path is None:
        return None
    pattern = re.compile(rf"^\s*{re.escape(attr)}\s*(:[^=]*)?=(?!=)")
    for offset, line in enumerate(lines):
        if pattern.match(line):
            return f"{_short(path)}:{first + offset}"
    return f"{_short(path)}:{first}"


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
