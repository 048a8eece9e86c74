"""A plugin exits within 2 s of its host's death, even when the host dies by SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pids import alive, sigkill_host_at_exit

HOST = str(Path(__file__).with_name("fake_host.py"))


def start_host(
    mode: str, count: int, mark: Path, *extra: str
) -> tuple[subprocess.Popen[str], list[int]]:
    env = {**os.environ, "FAKE_PLUGIN_MARK": str(mark)}
    host = subprocess.Popen(
        [sys.executable, HOST, mode, str(count), *extra],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert host.stdout is not None
    line = host.stdout.readline()
    assert line, "the fake host died before launching its plugins"
    return host, json.loads(line)


@pytest.mark.parametrize(
    ("mode", "raw", "expected", "graceful"),
    [
        # PDEATHSIG's SIGTERM and the pipe's EOF race; either ends the plugin
        ("serve", False, {"parent-died", "sigterm"}, True),
        ("stubborn", False, {"parent-died"}, True),  # SIGTERM ignored: the pipe EOF
        ("stall", False, {"parent-died"}, False),  # graceful path hangs: hard exit
        ("serve", True, {"sigterm"}, True),  # no pipe: PR_SET_PDEATHSIG delivers SIGTERM
    ],
)
def test_plugins_exit_when_the_host_is_killed(
    tmp_path: Path, reap_pids: list[int], mode: str, raw: bool, expected: set[str], graceful: bool
) -> None:
    mark = tmp_path / "mark"
    host, pids = start_host(mode, 2, mark, *(["raw"] if raw else []))
    reap_pids.extend(pids)
    with sigkill_host_at_exit(host, pids, gone_within=2.0):
        assert all(alive(p) for p in pids)
    marks = mark.read_text().splitlines()
    assert expected & set(marks)
    assert ("exiting" in marks) is graceful
