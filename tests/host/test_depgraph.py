"""Dependency graph: startup order, cycles, missing services, impact analysis."""

from __future__ import annotations

import pytest

from plugin_di.host.depgraph import DependencyGraph, DependencyGraphError, Node
from plugin_di.host.store import Declaration, Requirement


def node(
    rid: str,
    provides: tuple[str, ...] = (),
    requires: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
) -> Node:
    reqs = tuple(Requirement(t) for t in requires) + tuple(
        Requirement(t, required_for_startup=False) for t in optional
    )
    return Node(rid, rid, tuple(Declaration(t) for t in provides), reqs)


def graph(*nodes: Node) -> DependencyGraph:
    g = DependencyGraph()
    for n in nodes:
        g.add(n)
    return g


def test_simple_chain() -> None:
    g = graph(
        node("app-ghi", requires=("cache",)),
        node("cache-def", ("cache",), ("logger",)),
        node("logger-abc", ("logger",)),
    )
    assert g.startup_order() == ["logger-abc", "cache-def", "app-ghi"]
    assert g.shutdown_order() == ["app-ghi", "cache-def", "logger-abc"]


def test_independent_plugins_lexicographic() -> None:
    g = graph(
        node("metrics-b", ("metrics",)), node("logger-a", ("logger",)), node("cache-c", ("cache",))
    )
    assert g.startup_order() == ["cache-c", "logger-a", "metrics-b"]


def test_diamond() -> None:
    g = graph(
        node("app", requires=("logger", "cache")),
        node("logger", ("logger",), ("metrics",)),
        node("cache", ("cache",), ("metrics",)),
        node("metrics", ("metrics",)),
    )
    assert g.startup_order() == ["metrics", "cache", "logger", "app"]


def test_cycle_error_names_the_cycle() -> None:
    g = graph(node("a", ("x",), ("z",)), node("b", ("y",), ("x",)), node("c", ("z",), ("y",)))
    with pytest.raises(DependencyGraphError) as info:
        g.startup_order()
    message = str(info.value)
    assert "dependency cycle" in message
    for part in ("a (provides 'x')", "b (provides 'y')", "c (provides 'z')"):
        assert part in message


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(DependencyGraphError, match="cycle"):
        graph(node("a", ("x",), ("x",))).startup_order()


def test_missing_required_and_optional() -> None:
    with pytest.raises(DependencyGraphError, match=r"plugin cache requires service 'logger'"):
        graph(node("cache", ("cache",), ("logger",))).startup_order()
    assert graph(node("cache", ("cache",), optional=("logger",))).startup_order() == ["cache"]


def test_readding_does_not_duplicate() -> None:
    g = graph(node("a", ("x",)))
    g.add(node("a", ("x",)))
    assert g.providers("x") == ["a"]
    assert len(g) == 1


def test_impact_transitive_without_alternatives() -> None:
    g = graph(
        node("logger-a", ("logger",)),
        node("cache-c", ("cache",), ("logger",)),
        node("app-z", requires=("cache",)),
    )
    impact = g.impact("logger-a")
    assert impact.affected_services == ["logger"]
    assert impact.affected_plugins == ["app-z", "cache-c"]
    assert impact.optional_impact == []


def test_impact_with_alternative_provider() -> None:
    g = graph(
        node("logger-a", ("logger",)),
        node("logger-b", ("logger",)),
        node("cache-c", ("cache",), ("logger",)),
    )
    impact = g.impact("logger-a")
    assert impact.affected_plugins == []
    assert impact.optional_impact == ["cache-c"]
    g.remove("logger-b")
    assert g.impact("logger-a").affected_plugins == ["cache-c"]


def test_impact_optional_and_multi_service_and_unknown() -> None:
    g = graph(node("core", ("logger", "metrics")), node("cache", ("cache",), optional=("logger",)))
    impact = g.impact("core")
    assert impact.affected_services == ["logger", "metrics"]
    assert impact.affected_plugins == []
    assert impact.optional_impact == ["cache"]
    assert g.impact("nobody").affected_services == []
    assert g.dependents("core") == ["cache"]
