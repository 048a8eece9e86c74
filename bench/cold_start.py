"""Cold start: launch request to handshake line to first answered call; idle memory.

The default path is an App forking its plugins from its warm zygote (`app_start`); the
spawn figures (`one_plugin`, ``app_start(zygote=False)``) and a bare `Zygote` are kept
beside it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dependency_injector import containers

from bench.channels import REQUEST, ROOT, spawned
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin, app_zygote
from plugin_di.launch.zygote import Zygote
from plugin_di.plugin import env as plugin_env
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.rpc.transport import connect_client, http_client
from plugin_di.settings import Settings


async def one_plugin(channel: str = "fast") -> float:
    """Milliseconds from spawning ``plugin-di serve`` to its first answered ``Get``.

    ``fast``: a Unix socket, as a host launches local plugins with
    ``unix_socket=True``; ``h2c``: 127.0.0.1, the default.
    """
    with tempfile.TemporaryDirectory() as tmp:
        args = ("--uds", str(Path(tmp) / "kv.sock")) if channel == "fast" else ()
        start = time.perf_counter()
        async with spawned(*args) as line, http_client(line.url) as http:
            client = connect_client(KVServiceClient, line.url, http)
            await client.get(REQUEST)
            return (time.perf_counter() - start) * 1000


async def app_start(n: int, *, zygote: bool = True) -> tuple[float, float]:
    """An App of ``n`` KV process plugins with default options, started from nothing, and
    one ``Get`` answered by each: (ms from ``App.start``, ms from the moment the app's
    zygote was ready). With ``zygote=False`` (``PLUGIN_DI_ZYGOTE=0``) they are spawned and
    both figures are the same.
    """
    container = containers.DynamicContainer()
    for i in range(n):
        setattr(
            container, f"kv{i}", ProcessPlugin(make_plugin(), module="examples.kv", cwd=str(ROOT))
        )
    app = App(container, name=f"cold_start_{n}", settings=Settings(zygote=zygote))
    start = time.perf_counter()
    await app.start()
    try:
        clients = [getattr(container, f"kv{i}").client(KVServiceClient)() for i in range(n)]
        await asyncio.gather(*(c.get(REQUEST) for c in clients))
        end = time.perf_counter()
    finally:
        await app.stop()
    shared = app_zygote(app)
    ready = shared.ready_at if zygote and shared is not None else None
    if zygote and ready is None:
        raise RuntimeError("the app's zygote did not start; see the log")
    return (end - start) * 1000, (end - (ready or start)) * 1000


def _rss_mib(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def idle_plugin_rss_mib() -> float:
    """Resident memory (MiB) of a KV plugin process on the fast channel after a few calls."""
    pids: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "kv.sock")
        async with (
            spawned("--uds", sock, on_pid=pids.append) as line,
            http_client(line.url) as http,
        ):
            client = connect_client(KVServiceClient, line.url, http)
            for _ in range(100):
                await client.get(REQUEST)
            await asyncio.sleep(0.2)
            return _rss_mib(pids[0])


async def _forked_call(zygote: Zygote, socket_dir: str) -> float:
    """Fork a KV plugin, call it once, stop it; milliseconds from the fork request to the answer."""
    start = time.perf_counter()
    environ = {**os.environ, "PYTHONPATH": str(ROOT), plugin_env.UNIX_SOCKET_DIR: socket_dir}
    command = [sys.executable, "-m", "plugin_di", "serve", "examples.kv.plugin:plugin"]
    child = await zygote.spawn(command, env=environ, cwd=str(ROOT))
    try:
        line = HandshakeLine.parse((await asyncio.wait_for(child.stdout.readline(), 30)).decode())
        async with http_client(line.url) as http:
            await connect_client(KVServiceClient, line.url, http).get(REQUEST)
        return (time.perf_counter() - start) * 1000
    finally:
        child.terminate()
        await asyncio.wait_for(child.wait(), 10)


async def zygote_starts(runs: int) -> dict[str, float]:
    """A bare `Zygote` (ms): its own start, one plugin forked, eight forked at once."""
    start = time.perf_counter()
    zygote = await Zygote.start(env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=str(ROOT))
    ready = (time.perf_counter() - start) * 1000
    one: list[float] = []
    eight: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(runs):
                one.append(await _forked_call(zygote, tmp))
            for _ in range(max(1, runs // 2)):
                # all eight are asked for at once; the slowest answer is the figure
                eight.append(
                    max(await asyncio.gather(*(_forked_call(zygote, tmp) for _ in range(8))))
                )
    finally:
        await zygote.aclose()
    return {"ready": ready, "one": statistics.median(one), "eight": statistics.median(eight)}
