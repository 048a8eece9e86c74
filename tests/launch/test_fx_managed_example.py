"""``python -m examples.fx_managed`` runs end to end, on the host platform, leaving no process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.pids import alive

ROOT = Path(__file__).resolve().parents[2]


def section(out: str, title: str) -> str:
    return out.split(f"== {title}")[1].split("\n== ")[0]


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
    started = re.findall(r"^  (\w+)\s+\S+\.start ", section(out, "started"), re.M)
    stopped = re.findall(r"^  (\w+)\s+\S+\.stop ", section(out, "stopped"), re.M)
    assert started.index("logger") < started.index("platform") < started.index("cache")
    assert started.index("platform") < started.index("kv")
    assert started[-1] == "inventory"
    assert stopped[0] == "inventory"
    assert stopped.index("cache") < stopped.index("platform") < stopped.index("logger")
    assert stopped.index("kv") < stopped.index("platform")

    # registration: the host's registry holds the in-memory logger (added by the
    # platform) and both process plugins (each joined the host on its own)
    host = section(out, "host platform")
    logger = re.search(
        r"^    (logger-[0-9a-f]+)\s+managed, in memory\s+logger 1\.0\.0\s+(/services/logger/\S+)$",
        host,
        re.M,
    )
    assert logger, host
    logger_id, logger_url = logger.groups()
    assert logger_url == f"/services/logger/{logger_id}"
    cache = re.search(r"^    (cache-[0-9a-f]+)\s+self-registered\s+cache 1\.0\.0\s", host, re.M)
    assert cache, host
    cache_id = cache.group(1)
    assert re.search(r"^    kv-[0-9a-f]+\s+self-registered\s+kv 1\.0\.0\s", host, re.M), host
    # discovery: the cache watches the registry for the logger and reports which one it uses
    assert re.search(rf"^    {cache_id}\s+HEALTHY\s+ready: logger from {logger_id}$", host, re.M)
    assert f"{cache_id} requires logger: 1 registry watcher(s) on logger" in host

    calls = section(out, "calls")
    assert "get    sku/apple -> 12 (cache hit)" in calls
    assert "watch  EVENT_TYPE_PUT sku/apple = 12" in calls
    # the routed call: the cache process reached the socketless logger through the host
    assert f"cache miss         key=sku/pear via={logger_url}" in calls
    routed = re.search(
        r"routed (\d+) calls from the cache process through the host to (\S+)", calls
    )
    assert routed, calls
    assert int(routed.group(1)) == 3  # write apple, miss pear, write pear
    assert routed.group(2) == logger_url

    health = section(out, "health")
    for name in ("logger", "kv", "cache"):
        assert re.search(rf"^  {name}\s+HEALTHY", health, re.M), out
    assert f"ready: logger from {logger_id}" in health
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
    assert "6 providers, 9 edges" in result.stdout


def test_cli_run_serves_until_sigterm_and_stops_everything() -> None:
    run = subprocess.Popen(
        [sys.executable, "-m", "plugin_di", "run", "examples.fx_managed.app:app"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(30, run.kill)  # bounds the blocking reads below
    watchdog.start()
    lines: list[str] = []
    try:
        assert run.stdout is not None
        for _ in range(200):  # until the app started and both process plugins joined the host
            line = run.stdout.readline()
            if not line:
                break
            lines.append(line)
            log = "".join(lines)
            if "started fx_managed" in log and log.count("joined the host at") == 2:
                break
        log = "".join(lines)
        assert "started fx_managed" in log, log
        host_url = re.search(r"host serving at (http://127\.0\.0\.1:\d+)", log)
        assert host_url, log
        for name in ("kv", "cache"):
            assert re.search(
                rf"\[{name}\] .*joined the host at {host_url.group(1)} as {name}-[0-9a-f]+", log
            ), log
        pids = [int(p) for p in re.findall(r"plugin \w+ started \(process\) .* pid (\d+)", log)]
        assert len(pids) == 2
        run.send_signal(signal.SIGTERM)
        rest, _ = run.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    assert run.returncode == 0, rest
    assert "stopped fx_managed" in rest
    assert not any(alive(p) for p in pids)
