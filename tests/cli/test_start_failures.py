"""Issue 17: a start failure shows the user's traceback once, without plugin-di's frames.

``plugin-di run`` in a subprocess (with the warm zygote, the default, and without it);
the assertions read what a user reads on stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAILING = ROOT / "tests" / "cli" / "failing"
ZYGOTE_FRAMES = ("plugin_di/launch/zygote", "_zygote_main", "runpy")


def run(target: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugin_di.cli", "run", target],
        cwd=ROOT,
        env={**os.environ, "PLUGIN_DI_LOG_LEVEL": "INFO", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def frames(err: str, path: Path) -> list[str]:
    return [line.strip() for line in err.splitlines() if line.strip().startswith(f'File "{path}')]


def test_a_raising_hook_shows_its_file_and_line_once() -> None:
    result = run("tests.cli.failing.app:HookRaises")
    err = result.stderr
    assert result.returncode == 1, err
    assert err.count("database refused the connection") == 2, err  # the headline, the source
    assert err.count("RuntimeError: database refused the connection") == 1, err
    assert frames(err, FAILING / "app.py") == [f'File "{FAILING / "app.py"}", line 13, in start']
    assert "plugin_di/di" not in err, err
    assert "asyncio" not in err, err
    assert "start failed; rolling back what started" in err
    assert "start hook Database.start of HookRaises.db failed (RuntimeError)" in err


@pytest.mark.parametrize("zygote", ["1", "0"])
def test_a_plugin_failing_at_import_shows_its_traceback_once(zygote: str) -> None:
    result = run("tests.cli.failing.app:PluginImportFails", PLUGIN_DI_ZYGOTE=zygote)
    err = result.stderr
    assert result.returncode == 1, err
    module = FAILING / "plugin_import.py"
    assert frames(err, module) == [f'File "{module}", line 3, in <module>'], err
    assert err.count("ModuleNotFoundError: No module named 'plugin_config_that_is_not") == 1
    assert not any(frame in err for frame in ZYGOTE_FRAMES[:2]), err
    assert "the plugin failed before it served" in err
    assert "[kv] Traceback" not in err  # the stderr tail is in the error, not logged as well


@pytest.mark.parametrize("zygote", ["1", "0"])
def test_a_plugin_failing_at_start_shows_its_traceback_once(zygote: str) -> None:
    result = run("tests.cli.failing.app:PluginStartFails", PLUGIN_DI_ZYGOTE=zygote)
    err = result.stderr
    assert result.returncode == 1, err
    module = FAILING / "plugin_start.py"
    assert frames(err, module) == [
        f'File "{module}", line 8, in <module>',
        f'File "{module}", line 5, in read_config',
    ], err
    assert err.count("ValueError: plugin config lacks the key 'port'") == 1, err
    assert not any(frame in err for frame in ZYGOTE_FRAMES[:2]), err
    if zygote == "1":  # a forked plugin's traceback looks like a spawned one's, minus runpy
        assert "runpy" not in err, err


def test_a_module_failing_at_import_shows_its_file_and_line() -> None:
    result = run("tests.cli.broken_import:App")
    err = result.stderr
    assert result.returncode == 1
    module = ROOT / "tests" / "cli" / "broken_import.py"
    assert frames(err, module) == [f'File "{module}", line 3, in <module>'], err
    assert err.count("RuntimeError: configuration file not found") == 1, err
    assert "importlib" not in err, err


def test_a_failing_stop_hook_shows_its_file_and_line_once() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "plugin_di.cli", "run", "tests.cli.failing.app:StopRaises"],
        cwd=ROOT,
        env={**os.environ, "PLUGIN_DI_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        seen = [process.stderr.readline()]
        for _ in range(100):
            if not seen[-1] or "started StopRaises" in seen[-1]:
                break
            seen.append(process.stderr.readline())
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            process.wait(timeout=10)
    err = "".join(seen) + rest
    assert process.returncode == 1, err  # a clean exit (0) that a stop hook spoiled
    assert "stop failed: 1 errors" in err
    assert err.count("OSError: cache flush failed") == 1, err
    assert frames(err, FAILING / "app.py") == [f'File "{FAILING / "app.py"}", line 53, in stop']
    assert "stop hook Cache.stop of StopRaises.cache failed (OSError)" in err
