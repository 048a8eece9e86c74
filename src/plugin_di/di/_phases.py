"""The App's phases over its built nodes: start, roll back, stop.

After the build every node the App manages is a local index in start order, with its
hooks, dependencies and dependents. Nodes that are not providers follow them: one per
object shared through the Lifecycle (``<name>``, needed by the providers that asked
for it, see `Lifecycle.shared`), then ``<app>``, which holds the hooks appended to the
Lifecycle outside any build and needs every other node. Each phase is one `Walk`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Literal

from plugin_di.clock import Clock
from plugin_di.di._walk import Walk, WalkResult
from plugin_di.di.errors import HookFailure, LifecycleError, StartError, StopError
from plugin_di.di.events import Emitter, RolledBack, RollingBack
from plugin_di.di.graph import ProviderGraph
from plugin_di.di.lifecycle import Hook, SharedNode
from plugin_di.settings import Settings

APP_NODE = "<app>"
"""Name of the node that owns hooks appended to the Lifecycle outside any build."""


class Phases:
    """One App's built nodes and the walks that start, roll back and stop them."""

    def __init__(
        self,
        *,
        events: Emitter,
        clock: Clock,
        settings: Settings,
        cancel_grace: float,
        background: set[asyncio.Task[None]],
    ) -> None:
        self.events = events
        self.clock = clock
        self.settings = settings
        self.cancel_grace = cancel_grace
        self.background = background
        self.hooks: list[list[Hook]] = []  # per local node (start order), + the extra nodes
        self.names: list[str] = []
        self.deps: list[list[int]] = []
        self.dependents: list[list[int]] = []
        self.interrupted: str | None = None
        self._start: Walk | None = None

    def load(
        self,
        graph: ProviderGraph,
        order: Sequence[int],
        hooks: Mapping[int, list[Hook]],
        shared: Sequence[SharedNode],
        extra: Sequence[Hook],
    ) -> None:
        """Take the built nodes: ``order`` (graph indices) with ``hooks`` by graph index,
        then a node for each ``shared`` object and the ``<app>`` node for ``extra``, the
        hooks appended outside a build."""
        local = {g: k for k, g in enumerate(order)}
        self.names = [graph.names[i] for i in order]
        self.hooks = [hooks.get(i, []) for i in order]
        self.deps = [[local[d] for d in graph.deps[i]] for i in order]
        self.dependents = [[] for _ in order]
        for k, ds in enumerate(self.deps):
            for d in ds:
                self.dependents[d].append(k)
        if shared:
            by_name = {name: k for k, name in enumerate(self.names)}
            for node in shared:
                self._add_node(node.name, [node.hook], [], [by_name[u] for u in node.users])
        if extra:  # after every provider, before none
            self._add_node(APP_NODE, list(extra), list(range(len(self.names))), [])

    def _add_node(self, name: str, hooks: list[Hook], deps: list[int], users: list[int]) -> None:
        """A node that needs ``deps`` and is needed by ``users``."""
        k = len(self.names)
        self.names.append(name)
        self.hooks.append(hooks)
        self.deps.append(deps)
        self.dependents.append(users)
        for d in deps:
            self.dependents[d].append(k)
        for u in users:
            self.deps[u].append(k)

    def interrupt(self, reason: str) -> None:
        """Abort a start in progress (or the next one): running hooks are cancelled."""
        self.interrupted = reason
        if self._start is not None:
            self._start.interrupt(reason)

    async def start(self) -> WalkResult:
        """Run the start hooks; on cancellation roll back what started, then re-raise."""
        walk = self._start = self._new_walk(
            "start", self.deps, self.dependents, self.hooks, self.settings.start_timeout, True
        )
        if self.interrupted is not None:
            walk.interrupt(self.interrupted)
        try:
            return await walk.run()
        except asyncio.CancelledError:
            await self.rollback(walk.result)
            raise

    async def rollback(self, result: WalkResult) -> StartError:
        """Stop everything that started (with a fresh stop budget); return the error."""
        reason = _start_failure(result, self.settings.start_timeout)
        self.events.emit(RollingBack(LifecycleError(reason)))
        stopped = await self.stop(result.done, self.settings.stop_timeout)
        error = StartError(
            reason,
            result.failures,
            stopped.failures,
            result.still_running + stopped.still_running,
            stopped.count,
        )
        self.events.emit(RolledBack(stopped.count, stop_error(stopped)))
        return error

    def _stop_hooks(self, done: Sequence[Sequence[Hook]], k: int) -> list[Hook]:
        """Node ``k``'s hooks to stop, last started first."""
        started = {id(h) for h in done[k]} if k < len(done) else set()
        return [
            h
            for h in reversed(self.hooks[k])
            if h.on_stop is not None and (id(h) in started or h.always_stop)
        ]

    async def stop(self, done: Sequence[Sequence[Hook]], budget: float) -> WalkResult:
        """Run the stop hooks of ``done``; hooks the budget left no time for are failures."""
        hooks = [self._stop_hooks(done, k) for k in range(len(self.hooks))]
        walk = self._new_walk("stop", self.dependents, self.deps, hooks, budget, False)
        result = await walk.run()
        skipped = LifecycleError(f"not run: the stop budget of {budget:g}s ran out first")
        for k in result.unfinished:
            ran = {id(h) for h in result.done[k]}
            result.failures += [
                HookFailure("stop", self.names[k], h.label("stop"), skipped)
                for h in hooks[k]
                if id(h) not in ran and not _failed(result, self.names[k], h)
            ]
        return result

    def _new_walk(
        self,
        phase: Literal["start", "stop"],
        prereqs: list[list[int]],
        followers: list[list[int]],
        hooks: list[list[Hook]],
        budget: float,
        halt_on_error: bool,
    ) -> Walk:
        return Walk(
            phase=phase,
            names=self.names,
            prereqs=prereqs,
            followers=followers,
            hooks=hooks,
            events=self.events,
            clock=self.clock,
            hook_timeout=self.settings.hook_timeout,
            total_timeout=budget,
            cancel_grace=self.cancel_grace,
            halt_on_error=halt_on_error,
            backwards=phase == "stop",
            background=self.background,
            progress_interval=self.settings.progress_interval,
        )


def stop_error(result: WalkResult) -> StopError | None:
    """The `StopError` reporting a stop walk's failures; None when it had none."""
    if not result.failures and not result.still_running:
        return None
    return StopError(result.failures, result.still_running)


def _start_failure(result: WalkResult, budget: float) -> str:
    if result.interrupted is not None:
        return f"start interrupted ({result.interrupted})"
    if result.timed_out:
        return f"start timed out after {budget:g}s"
    first = result.failures[0]
    return first.describe()


def _failed(result: WalkResult, node: str, hook: Hook) -> bool:
    return any(f.node == node and f.hook == hook.label("stop") for f in result.failures)
