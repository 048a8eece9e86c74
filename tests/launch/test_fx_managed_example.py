"""``python -m examples.fx_managed`` runs end to end and leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from launch_support import alive

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.fx_managed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert "fx_managed: 6 providers" in out
    started = re.findall(r"^  (\w+)\s+\S+\.start ", out.split("== started")[1], re.M)
    stopped = re.findall(r"^  (\w+)\s+\S+\.stop ", out.split("== stopped")[1], re.M)
    assert started.index("logger") < started.index("logger_bridge") < started.index("cache")
    assert started[-1] == "inventory"
    assert stopped[0] == "inventory"
    assert stopped.index("cache") < stopped.index("logger_bridge") < stopped.index("logger")
    assert "get    sku/apple -> 12 (cache hit)" in out
    assert "watch  EVENT_TYPE_PUT sku/apple = 12" in out
    assert "cache miss         key=sku/pear" in out  # the cache process called the logger
    for name in ("logger", "kv", "cache"):
        assert re.search(rf"^  {name}\s+HEALTHY", out, re.M), out
    pids = [int(p) for p in re.findall(r"pid (\d+)", out.split("no plugin process left")[1])]
    assert len(pids) == 2
    assert not any(alive(p) for p in pids)


def test_cli_check_accepts_the_app() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "plugin_di", "check", "examples.fx_managed.app:app"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "6 providers, 8 edges" in result.stdout


def test_cli_run_serves_until_sigterm_and_stops_everything() -> None:
    run = subprocess.Popen(
        [sys.executable, "-m", "plugin_di", "run", "examples.fx_managed.app:app"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert run.stdout is not None
        for _ in range(200):  # until the app reports it started
            line = run.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "started fx_managed" in line:
                break
        log = "".join(lines)
        assert "started fx_managed" in log, log
        pids = [int(p) for p in re.findall(r"plugin \w+ started \(process\) .* pid (\d+)", log)]
        assert len(pids) == 2
        run.send_signal(signal.SIGTERM)
        rest, _ = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    assert run.returncode == 0, rest
    assert "stopped fx_managed" in rest
    assert not any(alive(p) for p in pids)
