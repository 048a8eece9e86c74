"""The start plan: networkx's topological generations of the providers an App manages.

networkx decides the order. The providers are the nodes of a DiGraph whose edges point
from a provider to what needs it; its topological generations are the start *stages*:
stage 1 needs nothing, and a provider's stage is one more than the highest stage among
what it needs. Every provider of a stage may start concurrently. The start order is the
stages one after the other, and the stop order is that order reversed. A graph with a
cycle has no generations past the cycle: `CycleError` names one cycle, from the first
provider left over, with where each provider on it was declared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain

import networkx as nx

from plugin_di.di.errors import CycleError
from plugin_di.di.graph import ProviderGraph


class Plan:
    """The start stages of a set of graph nodes (graph indices), from networkx."""

    def __init__(self, stages: list[list[int]]) -> None:
        self.stages = stages
        """The nodes by start stage: ``stages[0]`` is stage 1."""
        self.order = list(chain.from_iterable(stages))
        """The start order: dependencies first. The stop order is its reverse."""
        self.stage_of = {i: s for s, nodes in enumerate(stages, 1) for i in nodes}
        """Each node's start stage, from 1."""


def plan(graph: ProviderGraph, nodes: Sequence[int]) -> Plan:
    """The start stages of ``nodes``; raises `CycleError` with the path of one cycle."""
    deps = graph.deps
    starts = nx.DiGraph()
    starts.add_nodes_from(nodes)  # first, so networkx keeps the declaration order in a stage
    starts.add_edges_from((d, i) for i in nodes for d in deps[i])
    stages: list[list[int]] = []
    try:
        stages.extend(nx.topological_generations(starts))
    except nx.NetworkXUnfeasible:
        placed = set(chain.from_iterable(stages))
        path = _cycle(graph, [i for i in nodes if i not in placed])
        names, locations = [graph.names[i] for i in path], [graph.location(i) for i in path]
        raise CycleError(names, locations) from None
    return Plan(stages)


def _cycle(graph: ProviderGraph, left: Sequence[int]) -> list[int]:
    """One cycle among the nodes no generation took, as a closed path.

    Every node left over still needs a node left over, so following such a dependency
    from any of them must come back to a node already seen.
    """
    candidates = set(left)
    node = min(left)
    path: list[int] = [node]
    position = {node: 0}
    while True:
        node = next(d for d in graph.deps[node] if d in candidates)
        if node in position:
            return [*path[position[node] :], node]
        position[node] = len(path)
        path.append(node)


def to_networkx(
    graph: ProviderGraph, nodes: Sequence[int], stage_of: Mapping[int, int] | None
) -> nx.DiGraph:
    """A DiGraph of ``nodes`` named by path; edges point from a provider to what it needs.

    Node attributes: ``provider``, ``kind`` (provider class name) and ``stage`` (None
    without ``stage_of``, as for a graph with a cycle).
    """
    exported = nx.DiGraph(name=graph.root)
    for i in nodes:
        exported.add_node(
            graph.names[i],
            provider=graph.providers[i],
            kind=graph.kind(i),
            stage=stage_of.get(i) if stage_of is not None else None,
        )
    exported.add_edges_from((graph.names[i], graph.names[d]) for i in nodes for d in graph.deps[i])
    return exported
