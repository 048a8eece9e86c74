"""The CLI contract: ``plugin-di check``, ``graph`` and ``run`` (run in subprocesses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugin_di.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "target",
    [
        "tests.cli.targets:Serving",
        "tests.cli.targets:serving_instance",
        "tests.cli.targets:serving_app",
        "examples.hello.app:AppContainer",
    ],
)
def test_check_accepts_a_container_class_instance_or_app(target: str) -> None:
    result = cli("check", target)
    assert result.returncode == 0, result.stderr
    name = "AppContainer" if "hello" in target else "Serving"
    assert result.stdout == f"ok: {name}: 2 providers, 1 edges, 2 start stages\n"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.cli.targets:Cycle", "dependency cycle: Cycle.a -> Cycle.b -> Cycle.a"),
        ("tests.cli.targets:MissingDep", "missing dependency: MissingDep.url"),
        ("tests.cli.nowhere:Serving", "cannot import module 'tests.cli.nowhere'"),
        (
            "tests.cli.broken_import:App",
            "cannot import module 'tests.cli.broken_import': RuntimeError: configuration file",
        ),
        ("tests.cli.targets:Nope", "module 'tests.cli.targets' has no attribute 'Nope'"),
        ("tests.cli.targets:not_a_container", "names a int, not an App or a dependency-injector"),
        ("tests.cli.targets:Server", "names the class Server, not an App"),
        ("tests.cli.targets", "expected MODULE:ATTR"),
    ],
)
def test_check_rejects_bad_targets_with_the_error_text(target: str, message: str) -> None:
    result = cli("check", target)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("text", "  2. Serving.api\n"),
        ("dot", '"Serving.api" -> "Serving.db";'),
        ("mermaid", "n1 --> n0"),
    ],
)
def test_graph_prints_each_format(fmt: str, expected: str) -> None:
    result = cli("graph", "tests.cli.targets:Serving", "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


def test_graph_of_an_invalid_graph_prints_it_and_exits_1() -> None:
    result = cli("graph", "tests.cli.targets:Cycle")
    assert result.returncode == 1
    assert "Cycle: 2 providers, 2 edges" in result.stdout
    assert "dependency cycle: Cycle.a -> Cycle.b -> Cycle.a" in result.stderr
    bad = cli("graph", "tests.cli.targets:not_a_container")
    assert bad.returncode == 1
    assert "not an App" in bad.stderr


def _run_until_started(target: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PLUGIN_DI_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "plugin_di.cli", "run", target],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if "started Serving" in line:
            return process
    process.kill()
    raise AssertionError("the app never started:\n" + "".join(seen))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_stops_cleanly_on_a_signal(sig: signal.Signals) -> None:
    process = _run_until_started("tests.cli.targets:Serving")
    process.send_signal(sig)
    _, err = process.communicate(timeout=30)
    # after a clean stop: SIGTERM exits 0, SIGINT 130 (as a shell reports Ctrl-C)
    assert process.returncode == (130 if sig == signal.SIGINT else 0), err
    assert err.index("api: stopped") < err.index("db: stopped")
    assert f"shutdown requested ({sig.name})" in err


def test_run_exits_1_with_the_rollback_report_when_a_hook_raises() -> None:
    result = cli("run", "tests.cli.targets:FailsToStart")
    assert result.returncode == 1
    err = result.stderr
    assert (
        "start failed: start hook 'Broken.start' of FailsToStart.api: "
        "RuntimeError: port 8080 is taken" in err
    )
    assert "rolled back: 1 hook stopped, 0 errors" in err
    assert "db: stopped" in err


def test_run_rejects_a_bad_target() -> None:
    result = cli("run", "tests.cli.targets:not_a_container")
    assert result.returncode == 1
    assert "not an App" in result.stderr
