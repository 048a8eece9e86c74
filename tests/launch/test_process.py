"""PluginProcess: spawn, handshake line, environment, log forwarding, stop sequence."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest

from plugin_di.launch.process import LaunchConfig, PluginProcess, PluginStartError
from plugin_di.plugin import env
from tests.launch.support import fake_command
from tests.support.pids import alive


def config(mode: str, **kw: object) -> LaunchConfig:
    return LaunchConfig(name=f"fake-{mode}", command=fake_command(mode), **kw)  # type: ignore[arg-type]


def read_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


async def test_start_reads_handshake_and_passes_environment() -> None:
    proc = PluginProcess(
        config("serve", host_url="http://127.0.0.1:9", protocol_versions=(1, 2), unix_socket=True)
    )
    line = await proc.start()
    try:
        assert line.network == "tcp"
        assert line.address.startswith("127.0.0.1:")
        assert line.app_version == 2
        assert proc.url == f"http://{line.address}"
        child = read_environ(proc.pid or 0)
        assert child[env.DEFAULT_MAGIC_COOKIE_KEY] == env.DEFAULT_MAGIC_COOKIE_VALUE
        assert child[env.PROTOCOL_VERSIONS] == "1,2"
        assert child[env.HOST_URL] == "http://127.0.0.1:9"
        assert child[env.LAUNCH_SECRET] == proc.secret
        assert len(proc.secret) >= 32
        assert child[env.PLUGIN_NAME] == "fake-serve"
        assert Path(child[env.UNIX_SOCKET_DIR]).is_dir()  # noqa: ASYNC240
        assert int(child[env.PARENT_PIPE_FD]) > 2
    finally:
        code = await proc.stop()
    assert code == 0
    assert not alive(proc.pid or 0)
    assert not Path(child[env.UNIX_SOCKET_DIR]).exists()  # noqa: ASYNC240


async def test_each_launch_gets_its_own_secret() -> None:
    a, b = PluginProcess(config("serve")), PluginProcess(config("serve"))
    assert a.secret != b.secret


async def test_stop_calls_shutdown_with_the_grace_period(tmp_path: Path) -> None:
    import os
    import signal

    mark = tmp_path / "mark"
    proc = PluginProcess(config("serve", shutdown_grace=3.0, env={"FAKE_PLUGIN_MARK": str(mark)}))
    await proc.start()
    graces: list[float] = []

    async def shutdown(grace: float) -> None:
        graces.append(grace)
        os.kill(proc.pid or 0, signal.SIGTERM)  # what the plugin's Shutdown RPC would do

    assert await proc.stop(shutdown) == 0
    assert graces == [3.0]
    assert mark.read_text().splitlines() == ["sigterm", "exiting"]


async def test_stop_escalates_to_sigkill_when_sigterm_is_ignored() -> None:
    proc = PluginProcess(config("stubborn", kill_timeout=0.3, shutdown_grace=0.0))
    await proc.start()

    async def refuses(grace: float) -> None:
        raise ConnectionError("no control service")

    assert await proc.stop(refuses) == -9
    assert not alive(proc.pid or 0)
    assert await proc.stop() == -9  # idempotent


async def test_never_printing_the_handshake_line_fails_with_stderr_tail() -> None:
    proc = PluginProcess(config("silent", start_timeout=0.5))
    with pytest.raises(PluginStartError) as info:
        await proc.start()
    err = info.value
    assert "no handshake line within 0.5 s" in str(err)
    assert err.stderr_tail == ["booting"]
    assert "booting" in str(err)
    assert err.exit_code == -9
    assert not alive(proc.pid or 0)


async def test_exiting_before_the_handshake_reports_exit_code_and_stderr() -> None:
    proc = PluginProcess(config("crash"))
    with pytest.raises(PluginStartError) as info:
        await proc.start()
    err = info.value
    assert err.exit_code == 3
    assert err.stderr_tail == ["loading config", "fatal: config file missing"]
    assert "exit code 3" in str(err)
    assert "fatal: config file missing" in str(err)


async def test_garbage_on_stdout_is_refused_and_killed() -> None:
    cmd = [sys.executable, "-c", "import time; print('hello world', flush=True); time.sleep(30)"]
    proc = PluginProcess(LaunchConfig(name="chatty", command=cmd))
    with pytest.raises(PluginStartError, match="unrecognized plugin message 'hello world'"):
        await proc.start()
    assert not alive(proc.pid or 0)


async def test_app_version_the_host_does_not_offer_is_refused() -> None:
    cmd = [sys.executable, "-c", "import time; print('1|5|tcp|127.0.0.1:1|connect|', flush=True)"]
    proc = PluginProcess(LaunchConfig(name="future", command=cmd, protocol_versions=(1, 2)))
    with pytest.raises(PluginStartError, match=r"app protocol version 5 .* \(1, 2\)"):
        await proc.start()


async def test_missing_executable_is_a_start_error() -> None:
    proc = PluginProcess(LaunchConfig(name="ghost", command=["/nonexistent/plugin-bin"]))
    with pytest.raises(PluginStartError, match="cannot execute"):
        await proc.start()


async def test_cancelled_start_leaves_nothing_running() -> None:
    proc = PluginProcess(config("silent", start_timeout=30))
    task = asyncio.create_task(proc.start())
    for _ in range(200):
        if proc.pid:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert proc.pid
    assert not alive(proc.pid)


async def test_output_is_forwarded_with_json_levels(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="plugin_di.plugins")
    proc = PluginProcess(config("json"))
    await proc.start()
    try:
        for _ in range(300):
            if any("done-logging" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
    finally:
        await proc.stop()
    records = [r for r in caplog.records if r.name == "plugin_di.plugins.fake-json"]
    by_message = {r.getMessage(): r for r in records}
    assert by_message["[fake-json] debug line key=DEBUG"].levelno == logging.DEBUG
    assert by_message["[fake-json] warn line key=WARN"].levelno == logging.WARNING
    error = by_message["[fake-json] error line key=ERROR"]
    assert error.levelno == logging.ERROR
    assert error.fields == {"key": "ERROR"}  # type: ignore[attr-defined]
    assert error.plugin == "fake-json"  # type: ignore[attr-defined]
    stdout = by_message["[fake-json] plain stdout line"]
    assert stdout.levelno == logging.INFO
    assert stdout.stream == "stdout"  # type: ignore[attr-defined]
