"""The DAG walk that runs start (or stop) hooks: a node runs once its prerequisites are done.

Nodes are local indices, in start order. For start, a node's prerequisites are its
dependencies, and ready nodes are taken first in, first out (sync hooks run in the start
order); for stop, its dependents, and the ready node latest in the start order is taken
first (sync hooks stop in exactly the reverse order). A node runs its hooks one after the
other; independent nodes run concurrently. Sync hooks run inline (no task); the first
hook of a node that returns an awaitable moves the rest of the node into a task. One watchdog task,
created only when a task exists, enforces the per-hook timeout, the global budget
and the grace given to a cancelled hook before it is reported as still running.
Time comes from the injected `Clock`, so tests drive timeouts with a `FakeClock`.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from plugin_di.clock import Clock
from plugin_di.di.errors import HookCancelledError, HookFailure, HookTimeoutError, Phase
from plugin_di.di.events import Emitter, HookExecuted, HookExecuting, Waiting
from plugin_di.di.lifecycle import Hook, is_awaitable

INFINITY = float("inf")


@dataclass
class WalkResult:
    """What a walk did. ``done[i]`` lists the hooks of node ``i`` that succeeded, in order."""

    done: list[list[Hook]]
    failures: list[HookFailure] = field(default_factory=list)
    still_running: list[str] = field(default_factory=list)
    unfinished: list[int] = field(default_factory=list)
    timed_out: bool = False
    interrupted: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and not self.timed_out and self.interrupted is None

    @property
    def count(self) -> int:
        return sum(len(d) for d in self.done)


class _Running:
    """One task running a node's async hook."""

    __slots__ = ("cancelled", "deadline", "hook", "node", "started", "task")

    def __init__(self, node: int, hook: Hook, started: float, deadline: float) -> None:
        self.node = node
        self.hook = hook
        self.started = started
        self.deadline = deadline
        self.cancelled: BaseException | None = None  # why the walk cancelled it
        self.task: asyncio.Task[None] | None = None


class Walk:
    """Run ``hooks[i]`` for every node ``i`` once ``prereqs[i]`` are done."""

    def __init__(
        self,
        *,
        phase: Phase,
        names: Sequence[str],
        prereqs: Sequence[Sequence[int]],
        followers: Sequence[Sequence[int]],
        hooks: Sequence[Sequence[Hook]],
        events: Emitter,
        clock: Clock,
        hook_timeout: float,
        total_timeout: float,
        cancel_grace: float,
        halt_on_error: bool,
        backwards: bool = False,
        background: set[asyncio.Task[None]] | None = None,
        progress_interval: float = 0.0,
    ) -> None:
        self.phase = phase
        self.names = names
        self.prereqs = prereqs
        self.followers = followers
        self.hooks = hooks
        self.emit = events.emit
        # building an event costs more than running a trivial hook: skip unwanted ones
        self._verbose = events.wants(HookExecuted.level)
        self._warn = events.wants(logging.WARNING)
        self._progress = events.wants(Waiting.level)
        self.clock = clock
        self.hook_timeout = hook_timeout
        self.total_timeout = total_timeout
        self.cancel_grace = cancel_grace
        self.halt_on_error = halt_on_error
        self.backwards = backwards
        # every progress_interval while hooks run: a Waiting event says which (0: never)
        self.progress_interval = progress_interval
        self._next_progress = INFINITY
        self.result = WalkResult(done=[[] for _ in names])
        self._running: dict[_Running, None] = {}
        self._ready: deque[int] = deque()  # start: first in, first out
        self._latest: list[int] = []  # stop: a heap of -index, the latest started first
        self._waiting: list[int] = []
        self._finished = bytearray(len(names))
        self._halted = False
        self._wake = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._deadline = INFINITY
        # tasks abandoned after ignoring cancellation; kept referenced so they are not collected
        self.background: set[asyncio.Task[None]] = set() if background is None else background

    async def run(self) -> WalkResult:
        began = self.clock.now()
        self._deadline = began + self.total_timeout
        if self.progress_interval > 0:
            self._next_progress = began + self.progress_interval
        waiting = self._waiting = [len(p) for p in self.prereqs]
        if self.backwards:
            self._latest = [-i for i, w in enumerate(waiting) if w == 0]
            heapq.heapify(self._latest)
        else:
            self._ready.extend(i for i, w in enumerate(waiting) if w == 0)
        try:
            while True:
                while not self._halted and (self._ready or self._latest):
                    self._advance(self._take(), 0)
                if not self._running:
                    break
                await self._wake.wait()
                self._wake.clear()
        except asyncio.CancelledError:
            for rec in self._running:
                if rec.task is not None:
                    rec.task.cancel()
            raise
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
        result = self.result
        result.unfinished = [i for i in range(len(self.names)) if not self._finished[i]]
        return result

    def interrupt(self, reason: str) -> None:
        """Stop scheduling nodes and cancel the running hooks (a signal arrived)."""
        if self.result.interrupted is None and not self.result.timed_out:
            self.result.interrupted = reason
            self._halt_all(HookCancelledError(f"{self.phase} interrupted: {reason}"))

    # -- running a node --------------------------------------------------------------

    def _take(self) -> int:
        """The next ready node (there is one)."""
        return -heapq.heappop(self._latest) if self.backwards else self._ready.popleft()

    def _advance(self, i: int, k: int) -> None:
        """Start node ``i``; its first async hook moves the rest of the node into a task."""
        pending = self._run_hooks(i, k)
        if pending is not None:
            k, hook, awaitable, began = pending
            rec = _Running(i, hook, began, began + self.hook_timeout)
            self._running[rec] = None
            rec.task = asyncio.ensure_future(self._drive(rec, k, awaitable))
            if self._watchdog is None:
                self._watchdog = asyncio.ensure_future(self._watch())

    def _run_hooks(self, i: int, k: int) -> tuple[int, Hook, Awaitable[Any], float] | None:
        """Run node ``i``'s hooks from ``k`` until one returns an awaitable (returned with
        its position, hook and start time) or the node ends (None; the node is finished)."""
        hooks = self.hooks[i]
        start = self.phase == "start"
        done = self.result.done[i]
        while k < len(hooks) and not self._halted:
            hook = hooks[k]
            k += 1
            fn = hook.on_start if start else hook.on_stop
            if fn is None:
                done.append(hook)
                continue
            if self._verbose:
                self.emit(HookExecuting(self.phase, self.names[i], hook.label(self.phase)))
            began = self.clock.now()
            try:
                outcome = fn()
            except Exception as exc:
                self._failed(i, hook, exc, began)
                continue
            if is_awaitable(outcome):
                return k - 1, hook, outcome, began
            self._succeeded(i, hook, began)
            if self.clock.now() >= self._deadline and not self.result.timed_out:
                self._global_timeout()
        self._finish(i)
        return None

    async def _drive(self, rec: _Running, k: int, awaitable: Awaitable[Any]) -> None:
        i = rec.node
        try:
            while True:
                error: BaseException | None = None
                try:
                    await awaitable
                except asyncio.CancelledError:
                    if rec.cancelled is None:
                        raise
                    error = rec.cancelled
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()
                except Exception as exc:
                    error = exc
                if rec not in self._running:
                    return  # abandoned: the walk already reported it and moved on
                if rec.cancelled is not None:
                    # cancelled by the walk; a hook that swallowed the cancellation and
                    # returned did finish, so it counts as done (and will be stopped)
                    if error is None:
                        self.result.done[i].append(rec.hook)
                    error = rec.cancelled
                    rec.cancelled = None
                if error is not None:
                    self._failed(i, rec.hook, error, rec.started)
                else:
                    self._succeeded(i, rec.hook, rec.started)
                pending = self._run_hooks(i, k + 1)
                if pending is None:
                    return
                k, rec.hook, awaitable, rec.started = pending
                rec.deadline = rec.started + self.hook_timeout
        finally:
            if rec in self._running:
                del self._running[rec]
                self._wake.set()

    def _succeeded(self, i: int, hook: Hook, began: float) -> None:
        self.result.done[i].append(hook)
        if self._verbose:
            took = self.clock.now() - began
            self.emit(HookExecuted(self.phase, self.names[i], hook.label(self.phase), took))

    def _failed(self, i: int, hook: Hook, error: BaseException, began: float) -> None:
        self.result.failures.append(
            HookFailure(self.phase, self.names[i], hook.label(self.phase), error)
        )
        if self._warn:
            took = self.clock.now() - began
            self.emit(HookExecuted(self.phase, self.names[i], hook.label(self.phase), took, error))
        if self.halt_on_error:
            self._halted = True

    def _finish(self, i: int) -> None:
        if self._finished[i]:
            return
        self._finished[i] = 1
        waiting = self._waiting
        for j in self.followers[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                if self.backwards:
                    heapq.heappush(self._latest, -j)
                else:
                    self._ready.append(j)

    # -- timeouts --------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            now = self.clock.now()
            if now >= self._deadline and not self.result.timed_out:
                self._global_timeout()
            for rec in [r for r in self._running if r.deadline <= now]:
                if rec.cancelled is None:
                    label = rec.hook.label(self.phase)
                    node = self.names[rec.node]
                    error = HookTimeoutError(
                        self.phase, node, label, self.hook_timeout, "hook timeout"
                    )
                    self._cancel(rec, error, now)
                else:
                    self._abandon(rec)
            if now >= self._next_progress:
                self._report_progress(now)
            horizon = min((r.deadline for r in self._running), default=INFINITY)
            if not self.result.timed_out:
                horizon = min(horizon, self._deadline)
            if self._running:
                horizon = min(horizon, self._next_progress)
            if horizon == INFINITY:
                return
            await self.clock.sleep(max(horizon - now, 0.0))

    def _report_progress(self, now: float) -> None:
        """Emit what is pending; the next report is one interval later."""
        missed = (now - self._next_progress) // self.progress_interval
        self._next_progress += (missed + 1) * self.progress_interval
        if not self._running or not self._progress:
            return
        pending = sorted(
            ((self.names[r.node], now - r.started) for r in self._running),
            key=lambda item: -item[1],
        )
        self.emit(Waiting(self.phase, tuple(pending)))

    def _global_timeout(self) -> None:
        self.result.timed_out = True
        self._halt_all(None)

    def _halt_all(self, reason: BaseException | None) -> None:
        self._halted = True
        now = self.clock.now()
        for rec in list(self._running):
            if rec.cancelled is None:
                label = rec.hook.label(self.phase)
                error = reason or HookTimeoutError(
                    self.phase,
                    self.names[rec.node],
                    label,
                    self.total_timeout,
                    f"{self.phase} timeout",
                )
                self._cancel(rec, error, now)
        if self._running and self._watchdog is None:
            self._watchdog = asyncio.ensure_future(self._watch())
        self._wake.set()

    def _cancel(self, rec: _Running, error: BaseException, now: float) -> None:
        rec.cancelled = error
        rec.deadline = now + self.cancel_grace
        if rec.task is not None:
            rec.task.cancel()

    def _abandon(self, rec: _Running) -> None:
        """The hook ignored cancellation for the whole grace period: report it and move on."""
        del self._running[rec]
        assert rec.cancelled is not None
        self._failed(rec.node, rec.hook, rec.cancelled, rec.started)
        self.result.still_running.append(
            f"{self.phase} hook {rec.hook.label(self.phase)!r} of {self.names[rec.node]}"
        )
        if rec.task is not None:
            self.background.add(rec.task)
            rec.task.add_done_callback(self.background.discard)
        self._finish(rec.node)
        self._wake.set()
