"""Supervisor: restart policies, exponential backoff on a FakeClock, crash-loop limit."""

from __future__ import annotations

import os
import signal

import pytest

from plugin_di.clock import FakeClock
from plugin_di.launch.config import Backoff, CrashLoop, LaunchConfig, RestartPolicy, Supervision
from plugin_di.launch.events import (
    HealthState,
    PluginCrashed,
    PluginEvent,
    PluginGaveUp,
    PluginRestarted,
    PluginStarted,
    PluginStopped,
)
from plugin_di.launch.process import PluginProcess
from plugin_di.launch.supervisor import Supervisor, SupervisorState
from tests.launch.support import fake_command
from tests.support.pids import alive
from tests.support.waiting import tick_until, until


def test_backoff_doubles_up_to_the_maximum() -> None:
    backoff = Backoff(base=0.5, max=3.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [
        (RestartPolicy.NEVER, 1, False),
        (RestartPolicy.ON_FAILURE, 1, True),
        (RestartPolicy.ON_FAILURE, -9, True),
        (RestartPolicy.ON_FAILURE, 0, False),
        (RestartPolicy.ALWAYS, 0, True),
    ],
)
def test_restart_policy(policy: RestartPolicy, code: int, restarts: bool) -> None:
    assert policy.restarts(code) is restarts


class Harness:
    def __init__(self, mode: str, **supervision: object) -> None:
        self.clock = FakeClock()
        self.events: list[PluginEvent] = []
        self.urls: list[str] = []
        self.downs = 0
        self.down_reasons: list[str] = []
        self.pids: list[int] = []

        async def launch() -> PluginProcess:
            proc = PluginProcess(LaunchConfig(name="fake", command=fake_command(mode)))
            await proc.start()
            self.pids.append(proc.pid or 0)
            return proc

        async def on_up(proc: PluginProcess) -> None:
            self.urls.append(proc.url)

        async def on_down(what: str) -> None:
            self.downs += 1
            self.down_reasons.append(what)

        self.sup = Supervisor(
            "fake",
            launch,
            clock=self.clock,
            emit=self.events.append,
            on_up=on_up,
            on_down=on_down,
            supervision=Supervision(**supervision),  # type: ignore[arg-type]
        )

    def of(self, kind: type[PluginEvent]) -> list[PluginEvent]:
        return [e for e in self.events if isinstance(e, kind)]

    async def advance_when_sleeping(self, seconds: float = 3600) -> None:
        await until(lambda: self.clock.sleepers > 0)
        self.clock.advance(seconds)


async def test_kill_9_restarts_after_backoff_and_swaps_the_endpoint() -> None:
    h = Harness("serve", backoff=Backoff(base=0.25))
    first = await h.sup.start()
    try:
        assert h.sup.health.state is HealthState.HEALTHY
        os.kill(first.pid or 0, signal.SIGKILL)
        await until(lambda: h.sup.state is SupervisorState.RESTARTING)
        assert h.sup.health.state is HealthState.DEGRADED
        assert h.downs == 1
        assert h.down_reasons == ["killed by SIGKILL"]
        crashed = h.of(PluginCrashed)
        assert len(crashed) == 1
        assert crashed[0].exit_code == -9  # type: ignore[attr-defined]
        assert crashed[0].restart_in == 0.25  # type: ignore[attr-defined]
        await h.advance_when_sleeping()
        await until(lambda: h.sup.state is SupervisorState.RUNNING)
        restarted = h.of(PluginRestarted)
        assert len(restarted) == 1
        assert restarted[0].attempt == 1  # type: ignore[attr-defined]
        assert len(h.urls) == 2
        assert h.sup.process is not None
        assert h.sup.process.pid != first.pid
        assert not alive(first.pid or 0)
    finally:
        await h.sup.stop()
    assert not any(alive(p) for p in h.pids)
    assert isinstance(h.events[0], PluginStarted)
    assert isinstance(h.events[-1], PluginStopped)


async def test_crash_loop_limit_gives_up_unhealthy_with_an_event() -> None:
    h = Harness("die", crash_loop=CrashLoop(max_crashes=3, window=60), backoff=Backoff(base=1))
    await h.sup.start()
    try:
        await tick_until(h.clock, lambda: h.sup.state is SupervisorState.FAILED)
        delays = [e.restart_in for e in h.of(PluginCrashed)]  # type: ignore[attr-defined]
        assert delays == [1, 2, None]
        (gave_up,) = h.of(PluginGaveUp)
        assert gave_up.crashes == 3  # type: ignore[attr-defined]
        assert "3 crashes within 60 s" in gave_up.reason  # type: ignore[attr-defined]
        health = h.sup.health
        assert health.state is HealthState.UNHEALTHY
        assert "not restarting" in health.reason
        assert h.sup.process is None
        assert not any(alive(p) for p in h.pids)
    finally:
        await h.sup.stop()


async def test_crashes_outside_the_window_do_not_count() -> None:
    h = Harness("serve", crash_loop=CrashLoop(max_crashes=2, window=10), backoff=Backoff(base=1))
    await h.sup.start()
    try:
        for round_ in range(3):
            proc = h.sup.process
            assert proc is not None
            os.kill(proc.pid or 0, signal.SIGKILL)
            await h.advance_when_sleeping()  # advances an hour: older crashes leave the window
            await until(lambda r=round_: len(h.of(PluginRestarted)) == r + 1)
        assert h.of(PluginGaveUp) == []
        assert [e.restart_in for e in h.of(PluginCrashed)] == [1, 1, 1]  # type: ignore[attr-defined]
    finally:
        await h.sup.stop()


@pytest.mark.parametrize("policy", [RestartPolicy.NEVER, RestartPolicy.ON_FAILURE])
async def test_no_restart_when_policy_says_so(policy: RestartPolicy) -> None:
    h = Harness("serve", restart=policy)
    proc = await h.sup.start()
    # SIGTERM makes the fake exit 0: on-failure keeps it down too
    os.kill(proc.pid or 0, signal.SIGTERM)
    await until(lambda: h.sup.state is SupervisorState.FAILED)
    assert "exit code 0" in h.sup.health.reason
    assert h.of(PluginRestarted) == []
    await h.sup.stop()


async def test_always_restarts_a_clean_exit() -> None:
    h = Harness("serve", restart=RestartPolicy.ALWAYS)
    proc = await h.sup.start()
    try:
        os.kill(proc.pid or 0, signal.SIGTERM)
        await h.advance_when_sleeping()
        await until(lambda: h.sup.state is SupervisorState.RUNNING and len(h.urls) == 2)
    finally:
        await h.sup.stop()


async def test_stop_during_backoff_leaves_nothing_running() -> None:
    h = Harness("serve")
    proc = await h.sup.start()
    os.kill(proc.pid or 0, signal.SIGKILL)
    await until(lambda: h.clock.sleepers > 0)
    await h.sup.stop()
    assert h.sup.state is SupervisorState.STOPPED
    assert not any(alive(p) for p in h.pids)
    await h.sup.stop()  # idempotent
    assert len(h.of(PluginStopped)) == 1
