"""Issue 17: ``plugin-di host`` and ``plugin-di serve`` stop cleanly on a signal, then exit
130 after SIGINT (as a shell reports Ctrl-C) and 0 after SIGTERM. (``plugin-di run``:
tests/cli/test_cli.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {
    "host": ["host", "--bind", "127.0.0.1:0"],
    "serve": ["serve", "examples.kv.plugin:plugin", "--bind", "127.0.0.1:0"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_a_signal_stops_the_command_with_its_exit_code(
    command: str, sig: signal.Signals, code: int
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "plugin_di.cli", *COMMANDS[command]],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the handshake line: it serves
        assert line.startswith("1|1|tcp|127.0.0.1:"), line
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
        assert process.returncode == code, err
        assert "Traceback" not in err, err
    finally:
        if process.returncode is None:
            process.kill()
            process.wait(timeout=10)
