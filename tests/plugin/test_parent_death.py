"""A served plugin stops when the process that launched it dies, even by SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import SERVE_KV, plugin_env, read_line

ROOT = Path(__file__).resolve().parents[2]

# The launcher starts the plugin (its stdout is ours), reports the plugin's pid on stderr
# and then waits to be killed.
LAUNCHER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, *sys.argv[1:]])
print(child.pid, file=sys.stderr, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state  # exited; waiting for init to reap it


def test_plugin_exits_when_its_launcher_is_killed() -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *SERVE_KV],
        cwd=ROOT,
        env=plugin_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    plugin_pid = 0
    try:
        assert launcher.stderr is not None
        plugin_pid = int(launcher.stderr.readline())
        assert read_line(launcher).startswith("1|1|tcp|127.0.0.1:")
        launcher.kill()
        launcher.wait(10)
        for _ in range(200):
            if _gone(plugin_pid):
                break
            time.sleep(0.05)
        assert _gone(plugin_pid), "the plugin outlived its launcher"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(10)
        if plugin_pid and not _gone(plugin_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(plugin_pid, signal.SIGKILL)
        for stream in (launcher.stdout, launcher.stderr):
            if stream is not None:
                stream.close()
