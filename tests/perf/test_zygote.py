"""The zygote: a plugin forked from a warm process behaves like a spawned one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from plugin_di.launch.zygote import DEFAULT_PRELOAD, Zygote, ZygoteChild, ZygoteError
from plugin_di.launch.zygote._main import CHILD_FAILED
from plugin_di.plugin import env as plugin_env
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.rpc.transport import connect_client, http_client
from tests.support.processes import ROOT
from tests.support.processes import plugin_env as child_env

SERVE_KV = [sys.executable, "-m", "plugin_di", "serve", "examples.kv.plugin:plugin"]


@contextlib.asynccontextmanager
async def zygote(preload: Sequence[str] = ()) -> AsyncIterator[Zygote]:
    z = await Zygote.start(preload, env=child_env(), cwd=str(ROOT))
    try:
        yield z
    finally:
        await z.aclose()


@contextlib.asynccontextmanager
async def stopped_at_end(child: ZygoteChild) -> AsyncIterator[ZygoteChild]:
    try:
        yield child
    finally:
        if child.returncode is None:
            child.kill()
            await asyncio.wait_for(child.wait(), 10)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def test_forked_plugin_serves_and_stops_like_a_spawned_one(tmp_path: Path) -> None:
    socket_dir = tmp_path / "socks"
    socket_dir.mkdir(mode=0o700)
    environ = child_env(
        {
            plugin_env.UNIX_SOCKET_DIR: str(socket_dir),
            plugin_env.DEFAULT_MAGIC_COOKIE_KEY: plugin_env.DEFAULT_MAGIC_COOKIE_VALUE,
        }
    )
    async with zygote(DEFAULT_PRELOAD) as z:
        child = await z.spawn(SERVE_KV, env=environ, cwd=str(ROOT))
        async with stopped_at_end(child):
            raw = await asyncio.wait_for(child.stdout.readline(), 20)
            line = HandshakeLine.parse(raw.decode())
            assert line.network == "unix"
            assert Path(line.address).parent == socket_dir
            assert os.getpgid(child.pid) == child.pid  # its own process group
            assert _ppid(child.pid) == z.pid
            async with http_client(line.url) as http:
                client = connect_client(KVServiceClient, line.url, http)
                await client.put(pb.PutRequest(key="z", value=b"forked"))
                assert (await client.get(pb.GetRequest(key="z"))).value == b"forked"
            os.killpg(child.pid, signal.SIGTERM)
            assert await asyncio.wait_for(child.wait(), 20) == 0
            assert b"stopping: SIGTERM" in await child.stderr.read()
            assert await child.stdout.read() == b""  # stdout carried the handshake line only


async def test_environment_cwd_stdio_and_exit_code(tmp_path: Path) -> None:
    (tmp_path / "probe_mod.py").write_text(
        "import os, sys\n"
        "print('out', os.getcwd(), os.environ['PROBE'], sys.argv[1:])\n"
        "print('err', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    environ = child_env({"PROBE": "yes"})
    environ["PYTHONPATH"] = os.pathsep.join([str(tmp_path), environ["PYTHONPATH"]])
    async with zygote() as z:
        child = await z.spawn(
            [sys.executable, "-m", "probe_mod", "a", "b"], env=environ, cwd=str(tmp_path)
        )
        async with stopped_at_end(child):
            assert await asyncio.wait_for(child.wait(), 20) == 3
            out = (await child.stdout.read()).decode()
            assert out == f"out {tmp_path} yes ['a', 'b']\n"
            assert (await child.stderr.read()).decode() == "err\n"


async def test_crash_and_signal_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "crash_mod.py").write_text("raise RuntimeError('broken plugin')\n")
    (tmp_path / "sleep_mod.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    environ = child_env()
    environ["PYTHONPATH"] = os.pathsep.join([str(tmp_path), environ["PYTHONPATH"]])
    async with zygote() as z:
        crash = await z.spawn([sys.executable, "-m", "crash_mod"], env=environ, cwd=str(tmp_path))
        async with stopped_at_end(crash):
            assert await asyncio.wait_for(crash.wait(), 20) == 1
            assert b"RuntimeError: broken plugin" in await crash.stderr.read()
        sleeper = await z.spawn([sys.executable, "-m", "sleep_mod"], env=environ, cwd=str(tmp_path))
        async with stopped_at_end(sleeper):
            assert await asyncio.wait_for(sleeper.stdout.readline(), 20) == b"up\n"
            sleeper.kill()
            assert await asyncio.wait_for(sleeper.wait(), 20) == -signal.SIGKILL


async def test_host_death_pipe_keeps_its_number_and_stops_the_plugin(tmp_path: Path) -> None:
    socket_dir = tmp_path / "socks"
    socket_dir.mkdir(mode=0o700)
    pipe_r, pipe_w = os.pipe()
    environ = child_env(
        {plugin_env.UNIX_SOCKET_DIR: str(socket_dir), plugin_env.PARENT_PIPE_FD: str(pipe_r)}
    )
    try:
        async with zygote(DEFAULT_PRELOAD) as z:
            child = await z.spawn(SERVE_KV, env=environ, cwd=str(ROOT), pass_fds=[pipe_r])
            async with stopped_at_end(child):
                assert (await asyncio.wait_for(child.stdout.readline(), 20)).startswith(b"1|")
                os.close(pipe_w)  # what the host's death looks like to the plugin
                pipe_w = -1
                assert await asyncio.wait_for(child.wait(), 20) == 0
                assert b"the host process died" in await child.stderr.read()
    finally:
        os.close(pipe_r)
        if pipe_w >= 0:
            os.close(pipe_w)


async def test_refusals() -> None:
    with pytest.raises(ZygoteError, match="cannot import no_such_module_xyz"):
        await Zygote.start(["no_such_module_xyz"], env=child_env())
    async with zygote() as z:
        with pytest.raises(ZygoteError, match="only fork 'python -m MODULE"):
            await z.spawn(["/bin/true"], env={})
        zygote_process = z._process
    assert zygote_process.returncode == 0  # it exits when the host closes the socket


async def test_a_dead_zygote_is_reported() -> None:
    async with zygote() as z:
        z._process.kill()
        await asyncio.wait_for(z._process.wait(), 10)
        with pytest.raises(ZygoteError, match="zygote"):
            await asyncio.wait_for(z.spawn([sys.executable, "-m", "json.tool"], env={}), 10)


async def test_the_launcher_forks_from_a_zygote(tmp_path: Path) -> None:
    from plugin_di.launch.process import LaunchConfig, PluginProcess

    async with zygote(DEFAULT_PRELOAD) as z:
        config = LaunchConfig(
            name="kv",
            command=[sys.executable, "-m", "examples.kv"],
            env={"PYTHONPATH": str(ROOT)},
            cwd=str(ROOT),
            unix_socket=True,
            zygote=z,
        )
        process = PluginProcess(config)
        line = await process.start()
        try:
            assert line.network == "unix"
            assert process.pid is not None
            assert _ppid(process.pid) == z.pid  # forked, not spawned
            async with http_client(line.url) as http:
                client = connect_client(KVServiceClient, line.url, http)
                await client.put(pb.PutRequest(key="l", value=b"launched"))
                assert (await client.get(pb.GetRequest(key="l"))).value == b"launched"
        finally:
            code = await process.stop()
        assert code == 0


async def test_process_plugin_forks_from_a_zygote() -> None:
    from dependency_injector import containers

    from examples.kv.plugin import make_plugin
    from plugin_di.di.app import App
    from plugin_di.di.providers import ProcessPlugin
    from plugin_di.launch.config import LaunchOptions

    async with zygote(DEFAULT_PRELOAD) as z:
        container = containers.DynamicContainer()
        container.kv = ProcessPlugin(
            make_plugin(),
            module="examples.kv",
            cwd=str(ROOT),
            env=child_env(),
            launch=LaunchOptions(zygote=z),
        )
        app = App(container, name="zygote_test")
        await app.start()
        try:
            client = container.kv.client(KVServiceClient)()
            await client.put(pb.PutRequest(key="d", value=b"di"))
            assert (await client.get(pb.GetRequest(key="d"))).value == b"di"
            handle = container.kv()
            assert _ppid(handle.pid) == z.pid
        finally:
            await app.stop()


async def test_a_burst_of_launches_and_a_cancelled_one(tmp_path: Path) -> None:
    """Requests are sent without waiting for each answer; each launch gets its own child,
    and a child forked for a cancelled launch is killed, not left running."""
    (tmp_path / "who_mod.py").write_text("import os\nprint(os.getpid(), flush=True)\n")
    environ = child_env()
    environ["PYTHONPATH"] = os.pathsep.join([str(tmp_path), environ["PYTHONPATH"]])
    command = [sys.executable, "-m", "who_mod"]
    async with zygote() as z:
        cancelled = asyncio.ensure_future(z.spawn(command, env=environ, cwd=str(tmp_path)))
        await asyncio.sleep(0)  # its request is sent
        cancelled.cancel()
        children = await asyncio.gather(
            *(z.spawn(command, env=environ, cwd=str(tmp_path)) for _ in range(4))
        )
        for child in children:
            async with stopped_at_end(child):
                assert int(await asyncio.wait_for(child.stdout.readline(), 20)) == child.pid
                assert await asyncio.wait_for(child.wait(), 20) == 0
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        deadline = time.monotonic() + 10
        while not z._early_exits:  # the zygote reports the killed child's exit
            assert time.monotonic() < deadline, "the orphan's exit was not reported"
            await asyncio.sleep(0.01)
        [(pid, code)] = z._early_exits.items()
        # Killed; or it had already finished; or it failed on its own once the cancelled
        # launch dropped its pipes. Either way it is not left running.
        assert code in (0, -signal.SIGKILL, CHILD_FAILED)
        assert pid not in [c.pid for c in children]
