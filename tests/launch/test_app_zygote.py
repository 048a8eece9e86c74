"""The default path: an App forks its 'python -m' process plugins from one warm zygote."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import containers

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin, app_zygote
from plugin_di.launch.checksum import module_file, sha256_file
from plugin_di.launch.config import LaunchConfig, LaunchOptions, Supervision
from plugin_di.launch.process import PluginProcess
from plugin_di.launch.zygote import SharedZygote, main_imports
from plugin_di.settings import Settings
from tests.support.pids import alive, sigkill_host_at_exit, wait_gone
from tests.support.processes import ROOT, plugin_env

Build = Callable[[containers.DynamicContainer], None]


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _kv(**options: Any) -> ProcessPlugin:
    return ProcessPlugin(make_plugin(), module="examples.kv", cwd=str(ROOT), **options)


@contextlib.asynccontextmanager
async def started(app: App) -> AsyncIterator[App]:
    await asyncio.wait_for(app.start(), 60)
    try:
        yield app
    finally:
        await asyncio.wait_for(app.stop(), 60)


async def _call(container: Any, name: str = "kv") -> bytes:
    client = getattr(container, name).client(KVServiceClient)()
    await client.put(pb.PutRequest(key="k", value=name.encode()))
    return bytes((await client.get(pb.GetRequest(key="k"))).value)


def _zygote_of(app: App) -> SharedZygote:
    shared = app_zygote(app)
    assert shared is not None, "no plugin of the app forks from a zygote"
    return shared


async def _new_pid(handle: Any, old: int, seconds: float = 30) -> int:
    """The pid of the handle's next process (bounded wait)."""
    deadline = time.monotonic() + seconds
    while handle.pid in (None, old) or handle.supervisor.state.value != "running":
        assert time.monotonic() < deadline, "the plugin was not restarted in time"
        await asyncio.sleep(0.02)
    return int(handle.pid)


async def test_default_app_forks_its_plugins_from_one_zygote_and_stops_it() -> None:
    container = containers.DynamicContainer()
    container.kv = _kv()
    container.kv2 = _kv()
    app = App(container, name="zygote_default")
    async with started(app):
        zygote = _zygote_of(app).zygote
        assert zygote is not None
        pids = [container.kv().pid, container.kv2().pid]
        assert [_ppid(pid) for pid in pids] == [zygote.pid, zygote.pid]  # forked, not spawned
        assert "examples.kv.plugin" in _zygote_of(app).optional  # preloaded
        assert await _call(container) == b"kv"
        assert await _call(container, "kv2") == b"kv2"
    assert wait_gone([*pids, zygote.pid], 10) == []
    assert _zygote_of(app).zygote is None


async def test_opt_outs_spawn() -> None:
    container = containers.DynamicContainer()
    container.kv = _kv(launch=LaunchOptions(zygote=False))
    async with started(App(container, name="zygote_opt_out")) as app:
        assert _ppid(container.kv().pid) == os.getpid()
        assert app_zygote(app) is None
        assert await _call(container) == b"kv"

    container = containers.DynamicContainer()
    container.kv = _kv()
    async with started(App(container, name="zygote_off", settings=Settings(zygote=False))) as app:
        assert app_zygote(app) is None
        assert _ppid(container.kv().pid) == os.getpid()


async def test_what_a_fork_would_run_differently_is_spawned() -> None:
    container = containers.DynamicContainer()
    container.dev = _kv(env={"PYTHONDEVMODE": "1"})  # read when an interpreter starts
    container.kv = _kv()
    async with started(App(container, name="zygote_mixed")) as app:
        zygote = _zygote_of(app).zygote
        assert zygote is not None
        assert _ppid(container.dev().pid) == os.getpid()
        assert _ppid(container.kv().pid) == zygote.pid


async def test_a_plugin_killed_by_sigkill_is_forked_again() -> None:
    container = containers.DynamicContainer()
    container.kv = _kv()
    async with started(App(container, name="zygote_restart")) as app:
        handle = container.kv()
        old = handle.pid
        os.kill(old, signal.SIGKILL)
        new = await _new_pid(handle, old)
        zygote = _zygote_of(app).zygote
        assert zygote is not None
        assert _ppid(new) == zygote.pid
        assert await _call(container) == b"kv"
    assert wait_gone([old, new], 10) == []


async def test_a_dead_zygote_is_started_again_and_its_plugins_restarted() -> None:
    container = containers.DynamicContainer()
    container.kv = _kv()
    async with started(App(container, name="zygote_death")) as app:
        first = _zygote_of(app).zygote
        assert first is not None
        handle = container.kv()
        old = handle.pid
        os.kill(first.pid, signal.SIGKILL)  # its children get their parent-death SIGTERM
        new = await _new_pid(handle, old)
        second = _zygote_of(app).zygote
        assert second is not None
        assert second.pid != first.pid
        assert _zygote_of(app).starts == 2
        assert _ppid(new) == second.pid
        assert await _call(container) == b"kv"
    assert wait_gone([old, new, first.pid, second.pid], 10) == []


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"preload": ["no_such_module_xyz"]}, "no_such_module_xyz"),
        ({"ready_timeout": 0.001}, "could not start"),  # slower than its budget
    ],
)
async def test_a_zygote_that_cannot_start_leaves_plugins_to_be_spawned(
    caplog: pytest.LogCaptureFixture, options: dict[str, Any], why: str
) -> None:
    shared = SharedZygote(**options)
    config = LaunchConfig(
        name="kv",
        command=[sys.executable, "-m", "examples.kv"],
        cwd=str(ROOT),
        unix_socket=True,
        zygote=shared,
    )
    process = PluginProcess(config)
    try:
        await asyncio.wait_for(process.start(), 60)
        assert process.pid is not None
        assert _ppid(process.pid) == os.getpid()
    finally:
        assert await process.stop() == 0
        await shared.aclose()
    assert "could not start" in caplog.text
    assert why in caplog.text
    assert shared.zygote is None


async def test_a_checksummed_plugin_is_forked_without_preloading_its_code() -> None:
    checksum = sha256_file(module_file("examples.kv"))
    container = containers.DynamicContainer()
    container.kv = _kv(supervision=Supervision(checksum=checksum))
    async with started(App(container, name="zygote_checksum")) as app:
        zygote = _zygote_of(app).zygote
        assert zygote is not None
        assert _ppid(container.kv().pid) == zygote.pid
        assert not any(m.startswith("examples.") for m in _zygote_of(app).optional)
        assert alive(container.kv().pid)


def test_main_imports_reads_the_module_without_running_it() -> None:
    found = main_imports("examples.kv")
    assert "examples.kv.plugin" in found
    assert "plugin_di.plugin.server" in found
    assert "__future__" not in found
    assert main_imports("plugin_di", ["serve", "examples.kv.plugin:plugin"]) == [
        "examples.kv.plugin"
    ]
    assert main_imports("no_such_module_xyz") == []


_HOST = """
import asyncio, json, sys
from dependency_injector import containers
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin, app_zygote

async def main():
    container = containers.DynamicContainer()
    container.kv = ProcessPlugin(make_plugin(), module="examples.kv", cwd=sys.argv[1])
    app = App(container, sinks=[])
    await app.start()
    print(json.dumps([container.kv().pid, app_zygote(app).zygote.pid]), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_a_host_killed_by_sigkill_leaves_neither_zygote_nor_plugin() -> None:
    host = subprocess.Popen(
        [sys.executable, "-c", _HOST, str(ROOT)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=plugin_env(),
    )
    pids: list[int] = []
    with sigkill_host_at_exit(host, pids, gone_within=3.0):
        assert host.stdout is not None
        pids += json.loads(host.stdout.readline())
        assert _ppid(pids[0]) == pids[1]
