"""A process plugin frozen with SIGSTOP: calls end at their deadline, and the app still stops.

A stopped process keeps its socket open and answers nothing, which is what a plugin stuck in
a long GC pause or swapped out looks like: a call must not wait past its deadline, the plugin
must serve again once it resumes, and stopping the app must not hang on it (SIGTERM stays
pending while a process is stopped: the stop escalates to SIGKILL).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from dependency_injector import containers

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin, plugin_handles
from plugin_di.launch.config import LaunchOptions
from plugin_di.launch.process_handle import ProcessHandle

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_stopped_plugin_fails_calls_at_their_deadline_and_still_stops() -> None:
    class AppContainer(containers.DeclarativeContainer):
        kv = ProcessPlugin(
            make_plugin(),
            module="examples.kv",
            cwd=str(ROOT),
            launch=LaunchOptions(shutdown_grace=0.5, kill_timeout=0.5),
        )

    app = App(AppContainer)
    await app.start()
    handle = plugin_handles(app.container)["kv"]
    assert isinstance(handle, ProcessHandle)
    assert handle.pid is not None
    pid = handle.pid
    try:
        client = app.container.kv.client(KVServiceClient)()
        await client.put(kv_pb2.PutRequest(key="k", value=b"v"))
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(ConnectError) as info:
            await client.get(kv_pb2.GetRequest(key="k"), timeout_ms=300)
        assert info.value.code is Code.DEADLINE_EXCEEDED
        os.kill(pid, signal.SIGCONT)
        got = await client.get(kv_pb2.GetRequest(key="k"), timeout_ms=5000)
        assert got.value == b"v"
        os.kill(pid, signal.SIGSTOP)  # frozen again: the stop below must not wait on it
    finally:
        await app.stop()
    assert not _alive(pid)
