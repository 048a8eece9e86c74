"""Graph export: a text tree, Graphviz DOT and a Mermaid flowchart, each with the start order.

Edges point from a provider to what it needs. Stages are start stages: stage 1 has
no dependencies, and everything in one stage may start concurrently.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

from plugin_di.di.errors import CycleError
from plugin_di.di.graph import ProviderGraph

Format = Literal["text", "dot", "mermaid"]
FORMATS: tuple[Format, ...] = ("text", "dot", "mermaid")


class GraphView:
    """What an export shows: the managed ``nodes`` of ``graph`` (indices), the ``roots``
    (empty: none given), and the start ``stages`` by name, or the ``cycle`` instead."""

    def __init__(
        self,
        title: str,
        graph: ProviderGraph,
        nodes: Sequence[int],
        roots: Sequence[int],
        stages: Sequence[Sequence[str]],
        cycle: CycleError | None = None,
    ) -> None:
        self.title = title
        self.nodes = list(nodes)
        self.names = graph.names
        self.deps = graph.deps
        self.kind = graph.kind
        self.roots = list(roots)
        self.cycle = cycle
        self.stages = stages
        self.stage_of = {n: s for s, names in enumerate(stages, 1) for n in names}
        self.edges = sum(len(self.deps[i]) for i in self.nodes)

    def summary(self) -> str:
        return f"{self.title}: {len(self.nodes)} providers, {self.edges} edges"

    def label(self, i: int) -> str:
        stage = self.stage_of.get(self.names[i])
        where = f", stage {stage}" if stage is not None else ""
        return f"{self.kind(i)}{where}"

    def order_lines(self) -> Iterator[str]:
        if self.cycle is not None:
            yield "start order: none, " + str(self.cycle).splitlines()[0]
            return
        yield "start order (each stage may start concurrently):"
        for number, names in enumerate(self.stages, 1):
            yield f"  {number}. {', '.join(names)}"

    def tree_roots(self) -> list[int]:
        if self.roots:
            return self.roots
        needed = {d for i in self.nodes for d in self.deps[i]}
        return [i for i in self.nodes if i not in needed] or self.nodes[:1]


def render(view: GraphView, fmt: Format = "text") -> str:
    """``view`` in format ``fmt``."""
    if fmt == "text":
        return to_text(view)
    if fmt == "dot":
        return to_dot(view)
    if fmt == "mermaid":
        return to_mermaid(view)
    raise ValueError(f"unknown graph format {fmt!r}; expected one of {', '.join(FORMATS)}")


def to_text(view: GraphView) -> str:
    """A summary, the start order, then a tree from each root down to what it needs."""
    lines = [view.summary(), *view.order_lines(), "dependencies (a provider, then what it needs):"]
    shown: set[int] = set()
    starts = view.tree_roots() + view.nodes  # the nodes: what a cycle hides from every root
    for start in starts:
        if start in shown:
            continue
        stack: list[tuple[int, str, str]] = [(start, "", "")]
        while stack:  # depth first, iteratively: chains can be deeper than the recursion limit
            i, prefix, tail = stack.pop()
            repeat = i in shown
            lines.append(
                f"{prefix}{tail}{view.names[i]} ({view.label(i)}){' ...' if repeat else ''}"
            )
            if repeat:
                continue
            shown.add(i)
            inner = prefix + ("" if not tail else "    " if tail == "└── " else "│   ")
            deps = view.deps[i]
            for n in range(len(deps) - 1, -1, -1):
                stack.append((deps[n], inner, "└── " if n == len(deps) - 1 else "├── "))
    return "\n".join(lines) + "\n"


def to_dot(view: GraphView) -> str:
    """Graphviz DOT; nodes of one start stage share a rank."""
    out = [f"digraph {_quote(view.title)} {{", f"  // {view.summary()}"]
    out += [f"  // {line}" for line in view.order_lines()]
    out += ["  rankdir=BT;", "  node [shape=box, fontname=Helvetica];"]
    for i in view.nodes:
        label = f"{view.names[i]}\\n{view.label(i)}"
        out.append(f"  {_quote(view.names[i])} [label={_quote(label, escape=False)}];")
    for i in view.nodes:
        for d in view.deps[i]:
            out.append(f"  {_quote(view.names[i])} -> {_quote(view.names[d])};")
    for names in view.stages:
        if len(names) > 1:
            out.append("  { rank=same; " + " ".join(_quote(n) + ";" for n in names) + " }")
    out.append("}")
    return "\n".join(out) + "\n"


def to_mermaid(view: GraphView) -> str:
    """A Mermaid flowchart; node ids are ``n0``, ``n1``... in start order."""
    ordered = [n for names in view.stages for n in names] or [view.names[i] for i in view.nodes]
    ids = {name: f"n{k}" for k, name in enumerate(ordered)}
    out = ["flowchart BT", f"  %% {view.summary()}"]
    out += [f"  %% {line}" for line in view.order_lines()]
    index = {view.names[i]: i for i in view.nodes}
    for name in ordered:
        label = f"{name}<br/>{view.label(index[name])}".replace('"', "#quot;")
        out.append(f'  {ids[name]}["{label}"]')
    for i in view.nodes:
        for d in view.deps[i]:
            out.append(f"  {ids[view.names[i]]} --> {ids[view.names[d]]}")
    return "\n".join(out) + "\n"


def _quote(text: str, escape: bool = True) -> str:
    if escape:
        text = text.replace("\\", "\\\\")
    return '"' + text.replace('"', '\\"') + '"'
