"""Issue 17: with ``PLUGIN_DI_LOG_FORMAT=json`` every log line is one JSON object with
timestamp, level and logger (events add their fields, plugin lines their plugin)."""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from plugin_di.di.events import LoggingSink, Started
from plugin_di.launch._logs import forward_line, plugin_logger
from plugin_di.logs import JSONFormatter

ROOT = Path(__file__).resolve().parents[2]


def _capture(logger: logging.Logger) -> tuple[io.StringIO, logging.Handler]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JSONFormatter())
    logger.addHandler(handler)
    return out, handler


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def _stamp(record: dict[str, Any]) -> datetime.datetime:
    assert record["timestamp"].endswith("Z")
    return datetime.datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))


def test_events_plugin_lines_and_exceptions_become_json_objects() -> None:
    logger = logging.getLogger("tests.json")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    out, handler = _capture(logger)
    kv = plugin_logger("kv")
    kv.setLevel(logging.DEBUG)
    kv.addHandler(handler)
    kv.propagate = False
    try:
        LoggingSink("text", logger=logger)(Started("Shop", 3, 0.25))
        forward_line(kv, "kv", "stderr", '{"level": "warn", "msg": "disk low", "free": 3}')
        try:
            raise ValueError("bad input")
        except ValueError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
        kv.removeHandler(handler)
        kv.propagate = True
    started, plugin_line, failure = _records(out.getvalue())
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    assert all(_stamp(r) > before for r in (started, plugin_line, failure))
    assert started == {
        "timestamp": started["timestamp"],
        "level": "INFO",
        "logger": "tests.json",
        "message": "started Shop: 3 hooks in 250.0ms",
        "event": "Started",
        "app": "Shop",
        "hooks": 3,
        "duration": 0.25,
    }
    assert (plugin_line["level"], plugin_line["logger"]) == ("WARNING", "plugin_di.plugins.kv")
    assert plugin_line["message"] == "[kv] disk low free=3"
    assert plugin_line["plugin"] == "kv"
    assert (plugin_line["stream"], plugin_line["free"]) == ("stderr", 3)
    assert failure["level"] == "ERROR"
    assert failure["message"] == "request failed"
    assert failure["exception"].endswith("ValueError: bad input")


def test_plugin_di_run_logs_json_lines() -> None:
    env = {**os.environ, "PLUGIN_DI_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "plugin_di.cli", "run", "tests.cli.targets:Serving"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            seen.append(line)
            if not line or '"Started"' in line:
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0
    # the target's own prints ("db: started") are not log records: skip them
    records = _records("".join(line for line in [*seen, *rest.splitlines(True)] if line[:1] == "{"))
    assert [r["event"] for r in records] == [
        "Started", "ShutdownRequested", "Stopping", "Stopped"
    ]  # fmt: skip
    for record in records:
        assert record["logger"] == "plugin_di"
        assert record["level"] == "INFO"
        _stamp(record)
    assert records[0]["message"].startswith("started Serving: 2 hooks in ")


def test_a_start_failure_stays_json_too() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "plugin_di.cli", "run", "tests.cli.failing.app:HookRaises"],
        cwd=ROOT,
        env={**os.environ, "PLUGIN_DI_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    records = _records(result.stderr)  # every line parses
    report = records[-1]
    assert report["level"] == "ERROR"
    assert report["message"].startswith("start failed: start hook 'Database.start' of")
    assert f'File "{ROOT / "tests/cli/failing/app.py"}", line 13, in start' in report["message"]
