"""Plugins as providers: placements, switching, supervision through the App, integrity."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from dependency_injector import containers, providers

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.clock import FakeClock
from plugin_di.di.app import App
from plugin_di.di.errors import StartError, StopError
from plugin_di.di.events import EmitterProvider, Event, HookExecuted
from plugin_di.di.providers import (
    InMemoryPlugin,
    ProcessPlugin,
    RemotePlugin,
    placed,
    plugin_handles,
    plugins_health,
)
from plugin_di.di.providers_events import PluginGaveUp, PluginRestarted
from plugin_di.launch import events as launch_events
from plugin_di.launch.checksum import ChecksumMismatchError, sha256_file
from plugin_di.launch.config import (
    Backoff,
    CrashLoop,
    LaunchConfig,
    LaunchOptions,
    RestartPolicy,
    Supervision,
)
from plugin_di.launch.events import HealthState
from plugin_di.launch.process import PluginProcess
from plugin_di.launch.process_handle import ProcessHandle
from plugin_di.plugin.definition import Plugin
from tests.support.pids import alive, sigkill_host_at_exit
from tests.support.processes import ROOT, plugin_env
from tests.support.waiting import tick_until, until

FAKE = str(ROOT / "tests" / "launch" / "fake_plugin.py")  # the launch tests' fake plugin program


def named(name: str) -> Plugin:
    return Plugin(name=name, services=make_plugin().services)


class Inventory:
    """A dependent: it only knows KVServiceClient, never where the plugin runs."""

    def __init__(self, kv: KVServiceClient, notes: KVServiceClient) -> None:
        self.kv = kv
        self.notes = notes
        self.seen: bytes = b""
        self.at_stop: bytes = b""

    async def start(self) -> None:
        await self.kv.put(kv_pb2.PutRequest(key="sku-1", value=b"3"))
        got = await self.kv.get(kv_pb2.GetRequest(key="sku-1"))
        await self.notes.put(kv_pb2.PutRequest(key="last", value=got.value))
        self.seen = got.value

    async def stop(self) -> None:
        # the plugins stop after their dependents: still reachable here
        got = await self.kv.get(kv_pb2.GetRequest(key="sku-1"))
        self.at_stop = got.value


def container(make_kv: Callable[..., Any]) -> type[containers.DeclarativeContainer]:
    """The app; ``make_kv(events=...)`` builds the kv provider: the only line that varies."""

    class AppContainer(containers.DeclarativeContainer):
        events = EmitterProvider()
        kv = make_kv(events=events)
        notes = InMemoryPlugin(named("notes"), events=events)
        inventory = providers.Singleton(
            Inventory, kv=kv.client(KVServiceClient), notes=notes.client(KVServiceClient)
        )

    return AppContainer


async def run_inventory(make_kv: Callable[..., Any]) -> tuple[Inventory, list[Event]]:
    events: list[Event] = []
    app = App(container(make_kv), sinks=[events.append])
    await app.start()
    try:
        inventory = app.container.inventory()
        assert isinstance(inventory.kv, KVServiceClient)
        assert inventory.seen == b"3"
        note = await inventory.notes.get(kv_pb2.GetRequest(key="last"))
        assert note.value == b"3"
        health = await plugins_health(app.container)
        assert {n: h.state for n, h in health.items()} == {
            "kv": HealthState.HEALTHY,
            "notes": HealthState.HEALTHY,
        }
    finally:
        await app.stop()
    return inventory, events


@pytest.mark.parametrize(
    ("placement", "mode"),
    [("in-memory", "direct"), ("in-memory", "asgi"), ("process", ""), ("remote", "")],
)
async def test_switching_placement_changes_nothing_for_dependents(
    placement: str, mode: str
) -> None:
    remote = PluginProcess(
        LaunchConfig(name="remote-kv", command=[sys.executable, "-m", "examples.kv"], cwd=str(ROOT))
    )
    remote_kv = (await remote.start()).url if placement == "remote" else ""

    def make_kv(events: Any) -> Any:
        options = {"module": "examples.kv", "cwd": str(ROOT), "url": remote_kv, "mode": mode}
        return placed(named("kv"), placement, events=events, **options)

    try:
        _, events = await run_inventory(make_kv)
    finally:
        await remote.stop()
    started = {e.plugin: e for e in events if isinstance(e, launch_events.PluginStarted)}
    assert started["kv"].placement == placement
    assert started["notes"].placement == "in-memory"
    if mode:
        assert started["kv"].url == f"in-memory:{mode}"


@pytest.mark.parametrize("placement", ["in-memory", "process"])
async def test_watch_streams_end_when_the_app_stops(placement: str) -> None:
    app = App(
        container(
            lambda events: placed(named("kv"), placement, module="examples.kv", cwd=str(ROOT))
        ),
        sinks=[],
    )
    await app.start()
    seen: list[str] = []

    async def watch() -> None:
        async for event in app.container.inventory().kv.watch(kv_pb2.WatchRequest()):
            seen.append(event.key)

    watching = asyncio.create_task(watch())
    try:
        await until(lambda: len(seen) > 0)
    finally:
        await app.stop()
    # the implementation's on_shutdown ends the stream, in memory as in a process
    await asyncio.wait_for(watching, 10)
    assert seen == ["_watch_started"]


async def test_mixed_placements_start_before_dependents_and_stop_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="plugin_di.plugins")
    checksum = sha256_file(ROOT / "examples" / "kv" / "__main__.py")
    inventory, events = await run_inventory(
        lambda events: ProcessPlugin(
            named("kv"),
            module="examples.kv",
            cwd=str(ROOT),
            supervision=Supervision(checksum=checksum),
            events=events,
        )
    )
    assert inventory.at_stop == b"3"
    hooks = [
        (e.phase, e.provider.rsplit(".", 1)[-1]) for e in events if isinstance(e, HookExecuted)
    ]
    starts = [p for phase, p in hooks if phase == "start"]
    stops = [p for phase, p in hooks if phase == "stop"]
    assert starts.index("kv") < starts.index("inventory")
    assert starts.index("notes") < starts.index("inventory")
    assert stops.index("inventory") < stops.index("kv")
    assert stops.index("inventory") < stops.index("notes")
    assert all(e.error is None for e in events if isinstance(e, HookExecuted))
    # stopped through PluginControl.Shutdown: the plugin's own log, forwarded, says so
    forwarded = [r.getMessage() for r in caplog.records if r.name == "plugin_di.plugins.kv"]
    assert any("host is stopping" in m for m in forwarded), forwarded
    stopped = [e for e in events if isinstance(e, launch_events.PluginStopped)]
    assert {e.plugin: e.exit_code for e in stopped} == {"kv": 0, "notes": None}


async def test_process_plugin_on_a_unix_socket() -> None:
    inventory, events = await run_inventory(
        lambda events: ProcessPlugin(
            named("kv"),
            module="examples.kv",
            cwd=str(ROOT),
            launch=LaunchOptions(unix_socket=True),
            events=events,
        )
    )
    started = [e for e in events if isinstance(e, launch_events.PluginStarted)]
    kv_started = next(e for e in started if e.plugin == "kv")
    assert kv_started.url.startswith("unix:///")
    assert inventory.at_stop == b"3"


async def test_tls_plugin_is_pinned_to_its_handshake_certificate(tmp_path: Path) -> None:
    from plugin_di.rpc.tls import ClientTLS, generate_ephemeral_cert

    pair = generate_ephemeral_cert("kv")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    serve = [sys.executable, "-m", "plugin_di", "serve", "examples.kv.plugin:plugin"]
    command = [*serve, "--tls-cert", str(cert), "--tls-key", str(key)]
    inventory, events = await run_inventory(
        lambda events: ProcessPlugin(named("kv"), command=command, cwd=str(ROOT), events=events)
    )
    started = [e for e in events if isinstance(e, launch_events.PluginStarted)]
    assert next(e for e in started if e.plugin == "kv").url.startswith("https://127.0.0.1:")
    assert inventory.at_stop == b"3"

    # the same plugin as a remote one: trusted through the given CA
    remote = PluginProcess(LaunchConfig(name="tls-kv", command=command, cwd=str(ROOT)))
    url = (await remote.start()).url
    try:
        inventory, _ = await run_inventory(
            lambda events: RemotePlugin(
                named("kv"), url, tls=ClientTLS(ca_pem=pair.cert_pem), events=events
            )
        )
        assert inventory.at_stop == b"3"
    finally:
        await remote.stop()


async def test_plugin_with_several_clients_is_started_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="plugin_di")

    class C(containers.DeclarativeContainer):
        kv = ProcessPlugin(named("kv"), module="examples.kv", cwd=str(ROOT))
        a = kv.client(KVServiceClient)
        b = kv.client(KVServiceClient)

    app = App(C, sinks=[])
    await app.start()
    try:
        assert app.container.a() is app.container.b()
        handles = plugin_handles(app.container)
        assert list(handles) == ["kv"]
    finally:
        await app.stop()
    # without events=, plugin events go to the plugin_di logger
    messages = [r.getMessage() for r in caplog.records if r.name == "plugin_di"]
    assert sum("plugin kv started (process)" in m for m in messages) == 1
    assert any("plugin kv stopped (exit code 0)" in m for m in messages)


async def test_kill_9_fails_calls_unavailable_restarts_and_keeps_the_client() -> None:
    events: list[Event] = []
    app = App(
        container(
            lambda events: ProcessPlugin(
                named("kv"),
                module="examples.kv",
                cwd=str(ROOT),
                supervision=Supervision(backoff=Backoff(base=0.05)),
                events=events,
            )
        ),
        sinks=[events.append],
    )
    await app.start()
    try:
        client = app.container.kv.client(KVServiceClient)()
        inventory = app.container.inventory()
        assert client is inventory.kv
        handle = plugin_handles(app.container)["kv"]
        assert isinstance(handle, ProcessHandle)
        first_pid = handle.pid or 0
        received: list[str] = []

        async def watch() -> None:
            async for event in client.watch(kv_pb2.WatchRequest(prefix="")):
                received.append(event.key)

        watching = asyncio.create_task(watch())
        await until(lambda: len(received) > 0)  # the stream is established
        puts = [client.put(kv_pb2.PutRequest(key=f"k{i}", value=b"v")) for i in range(20)]
        in_flight = asyncio.gather(*puts, return_exceptions=True)
        os.kill(first_pid, signal.SIGKILL)
        outcomes = await asyncio.wait_for(in_flight, 10)
        with pytest.raises(ConnectError) as watch_error:
            await asyncio.wait_for(watching, 10)
        assert watch_error.value.code is Code.UNAVAILABLE
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(o, ConnectError) and o.code is Code.UNAVAILABLE for o in failed)
        await until(lambda: any(isinstance(e, PluginRestarted) for e in events))
        assert handle.pid != first_pid
        assert not alive(first_pid)
        await client.put(kv_pb2.PutRequest(key="after", value=b"restart"))
        got = await inventory.kv.get(kv_pb2.GetRequest(key="after"))
        assert got.value == b"restart"
        assert app.container.kv.client(KVServiceClient)() is client
    finally:
        await app.stop()
    assert not alive(handle.pid or 0)


def test_host_killed_with_sigkill_leaves_no_plugin_behind() -> None:
    host = subprocess.Popen(
        [sys.executable, "-m", "tests.launch.fx_host"],
        cwd=ROOT,
        env=plugin_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    with sigkill_host_at_exit(host, pids, gone_within=2.0):
        assert host.stdout is not None
        pids += json.loads(host.stdout.readline())
        assert len(pids) == 2
        assert all(alive(p) for p in pids)


def processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if token.encode() in cmdline and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


async def test_plugin_that_never_handshakes_fails_start_and_rolls_back() -> None:
    token = uuid.uuid4().hex
    app = App(
        container(
            lambda events: ProcessPlugin(
                named("kv"),
                command=[sys.executable, FAKE, "silent", token],
                launch=LaunchOptions(start_timeout=0.5),
                supervision=Supervision(verify=False),
            )
        ),
        sinks=[],
    )
    with pytest.raises(StartError) as info:
        await app.start()
    report = str(info.value)
    assert "plugin 'kv' failed to start: no handshake line within 0.5 s" in report
    assert "booting" in report
    assert processes_with(token) == []


async def test_process_serving_another_plugin_is_refused() -> None:
    app = App(
        container(lambda events: ProcessPlugin(named("kv"), module="examples.cache")),
        sinks=[],
    )
    with pytest.raises(StartError) as info:
        await app.start()
    report = str(info.value)
    assert "plugin 'kv' failed to start: handshake refused" in report
    assert "'kv' not served here (served: cache)" in report
    assert processes_with("examples.cache") == []


async def test_crash_loop_limit_marks_unhealthy_and_emits_the_event() -> None:
    events: list[Event] = []
    clock = FakeClock()

    class C(containers.DeclarativeContainer):
        events_ = EmitterProvider()
        flaky = ProcessPlugin(
            named("flaky"),
            command=[sys.executable, FAKE, "die"],
            supervision=Supervision(
                verify=False,  # the fake serves nothing
                crash_loop=CrashLoop(max_crashes=3, window=60),
                backoff=Backoff(base=1),
            ),
            clock=clock,
            events=events_,
        )

    app = App(C, sinks=[events.append])
    await app.start()
    try:
        await tick_until(clock, lambda: any(isinstance(e, PluginGaveUp) for e in events))
        health = await plugins_health(app.container)
        assert health["flaky"].state is HealthState.UNHEALTHY
        assert "3 crashes within 60 s" in health["flaky"].reason
        gave_up = next(e for e in events if isinstance(e, PluginGaveUp))
        assert isinstance(gave_up, launch_events.PluginGaveUp)
        assert "UNHEALTHY" in gave_up.message()
    finally:
        await app.stop()


async def test_checksum_mismatch_refuses_to_launch() -> None:
    app = App(
        container(
            lambda events: ProcessPlugin(
                named("kv"),
                module="examples.kv",
                cwd=str(ROOT),
                supervision=Supervision(checksum="0" * 64),
            )
        ),
        sinks=[],
    )
    with pytest.raises(StartError) as info:
        await app.start()
    mismatch = [e for e in info.value.exceptions if isinstance(e, ChecksumMismatchError)]
    assert mismatch, info.value
    assert "refused to launch" in str(mismatch[0])
    assert str(ROOT / "examples" / "kv" / "__main__.py") in str(mismatch[0])


async def test_unreachable_remote_plugin_fails_start_clearly() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    app = App(container(lambda events: RemotePlugin(named("kv"), url)), sinks=[])
    with pytest.raises(StartError) as info:
        await app.start()
    report = str(info.value)
    assert f"remote plugin 'kv' at {url} is not usable: unreachable: UNAVAILABLE" in report
    assert "check that it runs and the URL is right" in report


async def test_restart_never_leaves_calls_failing_unavailable_with_the_reason() -> None:
    app = App(
        container(
            lambda events: ProcessPlugin(
                named("kv"),
                module="examples.kv",
                cwd=str(ROOT),
                supervision=Supervision(restart=RestartPolicy.NEVER),
                events=events,
            )
        ),
        sinks=[],
    )
    await app.start()
    try:
        handle = plugin_handles(app.container)["kv"]
        assert isinstance(handle, ProcessHandle)
        pid = handle.pid or 0
        os.kill(pid, signal.SIGKILL)
        await until(lambda: handle.supervisor.process is None)
        health = await handle.health()
        assert health.state is HealthState.UNHEALTHY
        assert "killed by SIGKILL" in health.reason
        with pytest.raises(ConnectError) as info:
            await app.container.inventory().kv.get(kv_pb2.GetRequest(key="sku-1"))
        assert info.value.code is Code.UNAVAILABLE
        assert "its process ended (killed by SIGKILL; restart policy never)" in info.value.message
    finally:
        # Inventory.stop calls kv, which stays down: that stop error is reported, kv's is not
        with pytest.raises(StopError) as stop_error:
            await app.stop()
    assert "inventory" in str(stop_error.value)
    assert not alive(pid)


TYPED_SNIPPET = """
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from plugin_di.di.providers import InMemoryPlugin, ProcessPlugin, RemotePlugin
from plugin_di.launch.config import Backoff, LaunchOptions, RestartPolicy, Supervision
from plugin_di.plugin.definition import Plugin


def typed(plugin: Plugin) -> None:
    reveal_type(ProcessPlugin(plugin, module="examples.kv").client(KVServiceClient)())
    reveal_type(InMemoryPlugin(plugin).client(KVServiceClient)())
    reveal_type(RemotePlugin(plugin, "http://127.0.0.1:1").client(KVServiceClient)())


def configured(plugin: Plugin) -> None:
    kv = ProcessPlugin(
        plugin,
        module="examples.kv",
        launch=LaunchOptions(unix_socket=False, auto_mtls=True, start_timeout=5.0),
        supervision=Supervision(restart=RestartPolicy.ALWAYS, backoff=Backoff(base=1.0)),
    )
    reveal_type(kv.client(KVServiceClient)())


def misconfigured(plugin: Plugin) -> None:
    ProcessPlugin(plugin, module="m", launch=LaunchOptions(start_timeout="soon"))  # bad-1
    ProcessPlugin(plugin, module="m", supervision=Supervision(backoff=2.0))  # bad-2
"""


def test_dependents_get_the_generated_client_type_under_mypy_strict(tmp_path: Path) -> None:
    snippet = tmp_path / "typed_snippet.py"
    snippet.write_text(TYPED_SNIPPET)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent"),
            *("--cache-dir", str(tmp_path / "cache"), str(snippet)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    revealed = [line for line in result.stdout.splitlines() if "Revealed type" in line]
    expected = '"examples.kv.gen.kv.v1.kv_connect.KVServiceClient"'
    assert len(revealed) == 4, result.stdout + result.stderr
    assert all(line.endswith(expected) for line in revealed), revealed
    ours = [line for line in result.stdout.splitlines() if line.startswith(str(snippet))]
    errors = {int(line.split(":")[1]) for line in ours if ": error:" in line}
    lines = TYPED_SNIPPET.splitlines()
    bad = {n for n, line in enumerate(lines, 1) if "# bad-" in line}
    assert errors == bad, ours  # the configuration is typed: only the misuses are errors


def test_unknown_placement_and_missing_url_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown placement 'cloud'"):
        placed(named("kv"), "cloud")
    with pytest.raises(ValueError, match="needs the plugin's url"):
        RemotePlugin(named("kv"))
    with pytest.raises(ValueError, match="module="):
        ProcessPlugin(named("kv"))
