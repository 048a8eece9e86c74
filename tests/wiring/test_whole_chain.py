"""The whole chain over a real process plugin: auth, retry, breaker, rate limit (issue 6).

One plugin process (``flaky_kv``) launched by a `ProcessPlugin` whose supervisor waits on a
`FakeClock`, so the restart after the kill happens exactly when the test advances it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from dependency_injector import containers

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import (
    KVServiceASGIApplication,
    KVServiceClient,
)
from plugin_di.clock import FakeClock
from plugin_di.di.app import App
from plugin_di.di.events import EmitterProvider, Event
from plugin_di.di.providers import (
    InterceptorChainProvider,
    ProcessPlugin,
    plugin_handles,
    plugins_health,
)
from plugin_di.di.providers_events import BreakerStateChanged, PluginRestarted
from plugin_di.launch.events import HealthState
from plugin_di.launch.process_handle import ProcessHandle
from plugin_di.launch.supervisor import Backoff, Supervision, SupervisorState
from plugin_di.plugin.definition import Plugin, Service
from plugin_di.rpc.interceptors import (
    BreakerConfig,
    InterceptorChain,
    retry_after_of,
)
from plugin_di.rpc.transport import connect_client, http_client

ROOT = Path(__file__).resolve().parents[2]

SERVE = [sys.executable, "-m", "plugin_di", "serve", "tests.wiring.flaky_kv:plugin"]


def _unavailable(error: BaseException) -> bool:
    # the breaker here counts only an unreachable plugin (RESOURCE_EXHAUSTED is tested apart)
    return isinstance(error, ConnectError) and error.code is Code.UNAVAILABLE


async def until(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_auth_retry_breaker_and_rate_limit_over_a_process_plugin() -> None:
    clock = FakeClock()
    chain = InterceptorChain(
        random=lambda: 0.0,  # full jitter drawn at 0: retries do not wait
        breaker=BreakerConfig(failure_threshold=2, is_failure=_unavailable),
    )
    plugin = Plugin(name="kv", services=[Service(KVServiceASGIApplication, KVServiceClient)])

    class Container(containers.DeclarativeContainer):
        events = EmitterProvider()
        interceptors = InterceptorChainProvider(chain)
        kv = ProcessPlugin(
            plugin,
            command=SERVE,
            cwd=str(ROOT),
            env={"PLUGIN_DI_RATE_LIMIT_RPS": "0.05", "PLUGIN_DI_RATE_LIMIT_BURST": "6"},
            supervision=Supervision(backoff=Backoff(base=1.0)),
            clock=clock,
            chain=interceptors,
            events=events,
        )

    seen: list[Event] = []
    app = App(Container, sinks=[seen.append])
    await app.start()
    handle = plugin_handles(app.container)["kv"]
    assert isinstance(handle, ProcessHandle)
    first_pid = handle.pid
    second_pid: int | None = None
    try:
        kv = app.container.kv.client(KVServiceClient)()

        # auth: a client without the launch secret is refused (before any rate-limit token)
        http = http_client(handle.url)
        try:
            stranger = connect_client(KVServiceClient, handle.url, http, timeout_ms=5000)
            with pytest.raises(ConnectError) as refused:
                await stranger.get(kv_pb2.GetRequest(key="a"))
            assert refused.value.code is Code.UNAUTHENTICATED
        finally:
            await http.aclose()

        # retry: Get (NO_SIDE_EFFECTS) fails UNAVAILABLE twice, the third attempt answers
        got = await kv.get(kv_pb2.GetRequest(key="flaky-1"))
        assert got.value == b"3"  # 3 attempts reached the plugin; the caller saw one call

        # rate limit: burst 6, three tokens taken by the attempts above
        codes: list[Code | None] = []
        limited: ConnectError | None = None
        for i in range(5):
            try:
                await kv.put(kv_pb2.PutRequest(key=f"k{i}", value=b"v"))
                codes.append(None)
            except ConnectError as exc:
                codes.append(exc.code)
                limited = exc
        assert codes == [None, None, None, Code.RESOURCE_EXHAUSTED, Code.RESOURCE_EXHAUSTED]
        assert limited is not None
        wait = retry_after_of(limited)
        assert wait is not None
        assert chain.retry is not None
        assert wait > chain.retry.max_backoff  # longer than retry waits: surfaced at once
        assert not [e for e in seen if isinstance(e, BreakerStateChanged)]

        # breaker: kill the plugin; the supervisor waits on the fake clock before restarting
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        await until(lambda: handle.supervisor.state is SupervisorState.RESTARTING)
        for _ in range(2):
            with pytest.raises(ConnectError) as down:
                await kv.get(kv_pb2.GetRequest(key="a"))
            assert down.value.code is Code.UNAVAILABLE
        opened = [e for e in seen if isinstance(e, BreakerStateChanged)]
        assert [(e.plugin, e.endpoint, e.old, e.new) for e in opened] == [
            ("kv", "process://kv", "Closed", "Open")
        ]
        with pytest.raises(ConnectError) as fast:
            await kv.get(kv_pb2.GetRequest(key="a"))
        assert fast.value.code is Code.UNAVAILABLE
        assert "circuit breaker for process://kv is open" in fast.value.message
        health = (await plugins_health(app.container))["kv"]
        assert health.state is HealthState.DEGRADED
        assert "circuit open for process://kv" in health.reason

        # the restart binds a new process: its breaker starts closed, calls pass again
        clock.advance(1.0)
        await until(lambda: any(isinstance(e, PluginRestarted) for e in seen))
        second_pid = handle.pid
        assert second_pid not in (None, first_pid)
        assert [e.new for e in seen if isinstance(e, BreakerStateChanged)] == ["Open", "Closed"]
        await kv.put(kv_pb2.PutRequest(key="after", value=b"restart"))
        assert (await kv.get(kv_pb2.GetRequest(key="after"))).value == b"restart"
        assert (await plugins_health(app.container))["kv"].state is HealthState.HEALTHY
    finally:
        await app.stop()
    assert not _alive(first_pid)
    assert not _alive(second_pid)


def _alive(pid: int | None) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False
