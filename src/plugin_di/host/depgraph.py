"""The host's provides/requires graph: startup order, cycles, and the impact of a removal.

Nodes are runtime ids. For every type a plugin requires for startup, an edge
goes from every provider of that type to it (a plugin waits for all providers,
as in connect-plugin-go). Optional dependencies add no edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx

from plugin_di.host.store import Declaration, Requirement


class DependencyGraphError(Exception):
    """The graph cannot be ordered: a missing required service or a cycle."""


@dataclass(frozen=True)
class Node:
    """One plugin in the graph."""

    runtime_id: str
    self_id: str = ""
    provides: tuple[Declaration, ...] = ()
    requires: tuple[Requirement, ...] = ()


@dataclass
class Impact:
    """What removing ``target`` does to the others (all lists sorted)."""

    target: str
    affected_services: list[str] = field(default_factory=list)
    affected_plugins: list[str] = field(default_factory=list)
    optional_impact: list[str] = field(default_factory=list)


class DependencyGraph:
    """Plugins, the services they provide and require, and the order they start in."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}

    def add(self, node: Node) -> None:
        """Add or replace a node (re-adding an id does not duplicate it)."""
        self._nodes[node.runtime_id] = node

    def remove(self, runtime_id: str) -> Node | None:
        return self._nodes.pop(runtime_id, None)

    def get(self, runtime_id: str) -> Node | None:
        return self._nodes.get(runtime_id)

    def __contains__(self, runtime_id: object) -> bool:
        return runtime_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def providers(self, service_type: str, exclude: Sequence[str] = ()) -> list[str]:
        """Runtime ids providing ``service_type``, sorted."""
        return sorted(
            rid
            for rid, node in self._nodes.items()
            if rid not in exclude and any(d.type == service_type for d in node.provides)
        )

    def has_service(self, service_type: str) -> bool:
        return bool(self.providers(service_type))

    def graph(self, *, strict: bool = True) -> nx.DiGraph:
        """The networkx graph: provider -> dependent, edges labelled with the service type.

        ``strict``: a required service nobody provides is an error (else it is skipped).
        """
        graph = nx.DiGraph()
        for rid in self._nodes:
            graph.add_node(rid)
        for rid, node in self._nodes.items():
            for req in node.requires:
                if not req.required_for_startup:
                    continue
                providers = self.providers(req.type)
                if not providers and strict:
                    raise DependencyGraphError(
                        f"plugin {rid} requires service {req.type!r} but no plugin provides it; "
                        f"add a provider of {req.type!r} or mark the dependency optional"
                    )
                for provider in providers:
                    graph.add_edge(provider, rid, service=req.type)
        return graph

    def startup_order(self) -> list[str]:
        """Providers before dependents; ties broken by the smallest runtime id."""
        graph = self.graph()
        try:
            return list(nx.lexicographical_topological_sort(graph))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(graph)
            path = " -> ".join(f"{u} (provides {graph.edges[u, v]['service']!r})" for u, v in cycle)
            raise DependencyGraphError(
                f"dependency cycle: {path} -> {cycle[0][0]}; make one of these dependencies "
                "optional (required_for_startup=False)"
            ) from None

    def shutdown_order(self) -> list[str]:
        """The reverse of the startup order: dependents stop before their providers."""
        return list(reversed(self.startup_order()))

    def shutdown_order_safe(self) -> list[str]:
        """Dependents first, tolerating missing providers (and cycles, broken by id)."""
        graph = self.graph(strict=False)
        try:
            order = list(nx.lexicographical_topological_sort(graph))
        except nx.NetworkXUnfeasible:
            order = sorted(self._nodes)
        return list(reversed(order))

    def impact(self, runtime_id: str) -> Impact:
        """Who loses a required service if ``runtime_id`` goes away (transitively).

        A dependent with another provider of the lost type is only optionally
        affected, unless that other provider is itself being lost.
        """
        impact = Impact(target=runtime_id)
        node = self._nodes.get(runtime_id)
        if node is None:
            return impact
        impact.affected_services = sorted({d.type for d in node.provides})
        gone = {runtime_id}
        optional: set[str] = set()
        queue = [runtime_id]
        while queue:
            current = self._nodes[queue.pop(0)]
            lost = {d.type for d in current.provides}
            for rid, other in sorted(self._nodes.items()):
                if rid in gone:
                    continue
                for req in other.requires:
                    if req.type not in lost:
                        continue
                    alternatives = self.providers(req.type, exclude=tuple(gone))
                    if req.required_for_startup and not alternatives:
                        gone.add(rid)
                        optional.discard(rid)
                        queue.append(rid)
                        break
                    optional.add(rid)
        impact.affected_plugins = sorted(gone - {runtime_id})
        impact.optional_impact = sorted(optional - gone)
        return impact

    def dependents(self, runtime_id: str) -> list[str]:
        """Plugins that require (in any way) a service ``runtime_id`` provides."""
        node = self._nodes.get(runtime_id)
        if node is None:
            return []
        lost = {d.type for d in node.provides}
        return sorted(
            rid
            for rid, other in self._nodes.items()
            if rid != runtime_id and any(r.type in lost for r in other.requires)
        )
