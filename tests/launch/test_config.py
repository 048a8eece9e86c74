"""LaunchOptions and Supervision: validated when made, resolved from Settings in one place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import plugin_di.launch
import plugin_di.launch.zygote
from plugin_di.launch.config import (
    Backoff,
    CrashLoop,
    LaunchOptions,
    RestartPolicy,
    Supervision,
    app_zygote,
)
from plugin_di.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings(plugin_start_timeout=7.0, shutdown_grace=3.0, hook_timeout=4.0)


def test_open_options_take_the_settings_and_set_ones_win() -> None:
    config = LaunchOptions().config(
        "kv", ["python", "-m", "kv"], settings=SETTINGS, protocol_versions=[1]
    )
    assert (config.start_timeout, config.shutdown_grace) == (7.0, 3.0)
    assert config.require_auth  # no host routes to it: only its launcher may call it
    assert config.unix_socket
    assert config.command == ("python", "-m", "kv")
    options = LaunchOptions(start_timeout=0.5, shutdown_grace=0.0, protocol_versions=[2, 3])
    hosted = options.config(
        "kv", ["kv"], settings=SETTINGS, protocol_versions=[1], host_url="http://127.0.0.1:1"
    )
    assert (hosted.start_timeout, hosted.shutdown_grace) == (0.5, 0.0)
    assert hosted.protocol_versions == (2, 3)
    assert not hosted.require_auth  # a host's router calls it with its own tokens


def test_an_apps_zygote_gets_its_start_budget_from_the_settings() -> None:
    assert app_zygote(SETTINGS).ready_timeout == 2.0  # half the hook budget: within it
    assert app_zygote(Settings(plugin_start_timeout=1.0)).ready_timeout == 1.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LaunchOptions(start_timeout=0), "start_timeout must be a positive"),
        (lambda: LaunchOptions(kill_timeout=-1.0), "kill_timeout must be a positive"),
        (lambda: LaunchOptions(shutdown_grace=-0.1), "shutdown_grace must be >= 0"),
        (lambda: LaunchOptions(protocol_versions=[]), "protocol_versions must be"),
        (lambda: Supervision(checksum="abc"), "is not a SHA-256"),
        (lambda: Supervision(restart="sometimes"), "'sometimes' is not a valid RestartPolicy"),  # type: ignore[arg-type]
        (lambda: Backoff(base=2.0, max=1.0), "needs 0 <= base <= max"),
        (lambda: CrashLoop(max_crashes=0), "needs max_crashes >= 1"),
    ],
)
def test_bad_options_are_refused_when_made(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_supervision_takes_a_policy_name_and_a_prefixed_checksum() -> None:
    digest = "AB" * 32
    supervision = Supervision(restart="never", checksum=f"sha256:{digest}")  # type: ignore[arg-type]
    assert supervision.restart is RestartPolicy.NEVER
    assert supervision.checksum == f"sha256:{digest}"  # kept as given; checked at each launch


def test_the_launch_package_lists_its_public_names() -> None:
    for package in (plugin_di.launch, plugin_di.launch.zygote):
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)
    assert "LaunchOptions" in plugin_di.launch.__all__
    assert "SharedZygote" in plugin_di.launch.zygote.__all__


def test_the_zygote_process_loads_no_launcher_module() -> None:
    """``python -m plugin_di.launch.zygote._main`` imports the packages above it: they
    import nothing until a name is used, so the zygote (and every plugin it forks) carries
    no launcher, engine or host code."""
    probe = (
        "import json, sys\n"
        "import plugin_di.launch.zygote._main\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('plugin_di'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [
        "plugin_di",
        "plugin_di._lazy",
        "plugin_di._version",
        "plugin_di.launch",
        "plugin_di.launch.zygote",
        "plugin_di.launch.zygote._main",
    ]
