"""Issue 17: ``plugin-di check --build`` builds the providers (starting nothing) and imports
each process plugin's module in a child process; failures come with their traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAILING = ROOT / "tests" / "cli" / "failing"


def check(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugin_di.cli", "check", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_build_imports_each_process_plugin() -> None:
    result = check("--build", "tests.cli.failing.app:PluginImports")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "built: PluginImports: 1 providers",
        "ok: plugin 'kv' (PluginImports.kv): examples.kv imports",
    ]


def test_without_build_nothing_is_built_or_imported() -> None:
    result = check("tests.cli.failing.app:PluginStartFails")
    assert result.returncode == 0, result.stderr
    assert "built" not in result.stdout


def test_a_plugin_module_that_fails_to_import_is_reported_with_its_traceback() -> None:
    result = check("--build", "tests.cli.failing.app:PluginStartFails")
    assert result.returncode == 1
    err = result.stderr
    module = FAILING / "plugin_start.py"
    assert "plugin 'kv' (PluginStartFails.kv): " in err
    assert "-m tests.cli.failing.plugin_start does not import:" in err
    assert f'File "{module}", line 8, in <module>' in err
    assert f'File "{module}", line 5, in read_config' in err
    assert err.count("ValueError: plugin config lacks the key 'port'") == 1, err
    assert "<string>" not in err, err
    assert "importlib" not in err, err


def test_a_missing_import_inside_the_plugin_module() -> None:
    result = check("--build", "tests.cli.failing.app:PluginImportFails")
    assert result.returncode == 1
    assert f'File "{FAILING / "plugin_import.py"}", line 3, in <module>' in result.stderr
    assert "ModuleNotFoundError: No module named 'plugin_config_that_is_not_installed'" in (
        result.stderr
    )


def test_a_provider_that_fails_to_build_is_reported_with_its_traceback() -> None:
    result = check("--build", "tests.cli.failing.app:BuildFails")
    assert result.returncode == 1
    err = result.stderr
    assert "cannot build BuildFails.settings" in err
    assert f'File "{FAILING / "app.py"}", line 33, in __init__' in err, err
    assert err.count("KeyError: 'DATABASE_URL'") == 1, err
    assert "dependency_injector" not in err, err


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_import_that_hangs_times_out_and_leaves_nothing_running(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    result = check(
        "--build",
        "--import-timeout",
        "4",
        "tests.cli.failing.app:PluginHangs",
        HANGS_PIDS=str(pids),
    )
    assert result.returncode == 1
    assert "importing tests.cli.failing.plugin_hangs did not end within 4 s" in result.stderr
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2  # the module's process and the child it started
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in started)
