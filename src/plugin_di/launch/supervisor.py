"""Keep a plugin process up: restart policy, exponential backoff and a crash-loop limit.

The first start is not retried: if it fails, the error goes to the lifecycle
engine, which rolls back. After that, the supervisor watches the process; when
it ends unasked, the policy decides whether to launch it again, after
``backoff.delay(n)`` seconds on the injected clock, where ``n`` counts the crashes
inside the crash-loop window. ``crash_loop.max_crashes`` crashes within
``crash_loop.window`` seconds make it give up: the plugin stays down, UNHEALTHY.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from enum import Enum

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.launch.config import (
    DEFAULT_BACKOFF,
    DEFAULT_CRASH_LOOP,
    DEFAULT_SUPERVISION,
    Backoff,
    CrashLoop,
    RestartPolicy,
    Supervision,
)
from plugin_di.launch.events import (
    EmitFn,
    HealthState,
    PluginCrashed,
    PluginGaveUp,
    PluginHealth,
    PluginRestarted,
    PluginStarted,
    PluginStopped,
    discard,
)
from plugin_di.launch.process import PluginProcess, PluginStartError, ShutdownCall, describe_exit

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_CRASH_LOOP",
    "Backoff",
    "CrashLoop",
    "Launch",
    "RestartPolicy",
    "Supervision",
    "Supervisor",
    "SupervisorState",
]

logger = logging.getLogger(__name__)


class SupervisorState(Enum):
    """Where a supervised plugin is."""

    IDLE = "idle"
    RUNNING = "running"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


Launch = Callable[[], Awaitable[PluginProcess]]
"""Spawns a fresh process and returns it started (handshake read)."""


class Supervisor:
    """Runs one plugin process and relaunches it per ``supervision`` (its restart policy,
    backoff and crash loop). ``start()``, then ``stop()``."""

    def __init__(
        self,
        name: str,
        launch: Launch,
        *,
        supervision: Supervision = DEFAULT_SUPERVISION,
        clock: Clock = SYSTEM_CLOCK,
        emit: EmitFn = discard,
        on_up: Callable[[PluginProcess], Awaitable[None]] | None = None,
        on_down: Callable[[str], Awaitable[None]] | None = None,
        shutdown_call: Callable[[PluginProcess], ShutdownCall | None] | None = None,
    ) -> None:
        self.name = name
        self.policy = supervision.restart
        self.backoff = supervision.backoff
        self.crash_loop = supervision.crash_loop
        self._launch = launch
        self._clock = clock
        self._emit = emit
        self._on_up = on_up
        self._on_down = on_down
        self._shutdown_call = shutdown_call
        self._process: PluginProcess | None = None
        self._watch: asyncio.Task[None] | None = None
        self._crashes: collections.deque[float] = collections.deque()
        self._state = SupervisorState.IDLE
        self._reason = "not started"
        self._changed = asyncio.Event()
        self.restarts = 0

    @property
    def state(self) -> SupervisorState:
        return self._state

    @property
    def process(self) -> PluginProcess | None:
        """The current process (None while down)."""
        return self._process

    @property
    def health(self) -> PluginHealth:
        """RUNNING is HEALTHY, RESTARTING DEGRADED, anything else UNHEALTHY."""
        if self._state is SupervisorState.RUNNING:
            return PluginHealth(HealthState.HEALTHY, self._reason)
        if self._state is SupervisorState.RESTARTING:
            return PluginHealth(HealthState.DEGRADED, self._reason)
        return PluginHealth(HealthState.UNHEALTHY, self._reason)

    def _set(self, state: SupervisorState, reason: str) -> None:
        self._state, self._reason = state, reason
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self) -> SupervisorState:
        """Wait for the next state change (for tests and health watchers)."""
        await self._changed.wait()
        return self._state

    async def start(self) -> PluginProcess:
        """Launch the first process; errors propagate and nothing is left running."""
        if self._state is not SupervisorState.IDLE:
            raise RuntimeError(f"plugin {self.name!r} supervisor already started")
        process = await self._launch()
        try:
            await self._up(process)
        except BaseException:
            await process.stop()
            raise
        self._emit(PluginStarted(self.name, url=process.url, pid=process.pid))
        self._watch = asyncio.create_task(self._supervise(), name=f"supervise {self.name}")
        return process

    async def _up(self, process: PluginProcess) -> None:
        self._process = process
        if self._on_up is not None:
            await self._on_up(process)
        self._set(SupervisorState.RUNNING, f"pid {process.pid}")

    async def _supervise(self) -> None:
        while True:
            process = self._process
            assert process is not None
            code = await process.wait()
            await process.stop()  # reaps, closes the parent pipe and log readers
            self._process = None
            if self._on_down is not None:
                await self._on_down(describe_exit(code))
            if not await self._handle_exit(code, process.stderr_tail):
                return

    async def _handle_exit(self, code: int | None, tail: list[str]) -> bool:
        """Decide after an exit; relaunch if needed. False when the plugin stays down."""
        what = describe_exit(code)
        while True:
            if not self.policy.restarts(code):
                self._emit(PluginCrashed(self.name, code, tuple(tail), None, what))
                self._set(
                    SupervisorState.FAILED, f"exited ({what}), restart policy {self.policy.value}"
                )
                return False
            now = self._clock.now()
            self._crashes.append(now)
            while self._crashes and self._crashes[0] <= now - self.crash_loop.window:
                self._crashes.popleft()
            if len(self._crashes) >= self.crash_loop.max_crashes:
                reason = (
                    f"{len(self._crashes)} crashes within {self.crash_loop.window:g} s "
                    f"(last: {what}); not restarting"
                )
                self._emit(PluginCrashed(self.name, code, tuple(tail), None, what))
                self._emit(
                    PluginGaveUp(self.name, len(self._crashes), self.crash_loop.window, reason)
                )
                logger.error("plugin %r gave up: %s", self.name, reason)
                self._set(SupervisorState.FAILED, reason)
                return False
            delay = self.backoff.delay(len(self._crashes))
            self._emit(PluginCrashed(self.name, code, tuple(tail), delay, what))
            logger.warning("plugin %r %s; restarting in %.2f s", self.name, what, delay)
            self._set(SupervisorState.RESTARTING, f"{what}; restart in {delay:g} s")
            await self._clock.sleep(delay)
            try:
                process = await self._launch()
            except PluginStartError as exc:
                code, tail, what = exc.exit_code, exc.stderr_tail, f"restart failed: {exc.reason}"
                continue
            try:
                await self._up(process)
            except Exception as exc:
                await process.stop()
                code, tail, what = None, [], f"restart failed: {exc}"
                continue
            self.restarts += 1
            self._emit(PluginRestarted(self.name, process.url, process.pid, self.restarts))
            return True

    async def stop(self) -> int | None:
        """Stop supervising and stop the process (Shutdown, SIGTERM, SIGKILL). Idempotent."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            call = self._shutdown_call(process) if self._shutdown_call else None
            code = await process.stop(call)
        if self._state is not SupervisorState.STOPPED:
            self._emit(PluginStopped(self.name, code))
            self._set(SupervisorState.STOPPED, "stopped")
        return code
