"""``plugin-di health`` and ``call`` against connect-plugin-go's own KV plugin (the Go peer).

The CLI runs as a console script, as a user runs it; skipped when the Go peer is missing.
"""

from __future__ import annotations

import subprocess
import sys

from tests.interop.support.go_peer import go_host, go_kv_server


def plugin_di(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugin_di.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_health_and_call_speak_to_a_connect_plugin_go_plugin() -> None:
    with go_kv_server() as (_, url):
        health = plugin_di("health", url)
        assert health.returncode == 0, health.stderr
        assert "connectplugin.health.v1: SERVING" in health.stdout
        assert health.stdout.endswith("status: SERVING\n")

        put = plugin_di("call", url, "kv.v1.KVService/Put", '{"key": "go", "value": "Z28="}')
        assert put.returncode == 0, put.stderr
        got = plugin_di("call", url, "kv.v1.KVService/Get", '{"key": "go"}')
        assert got.returncode == 0, got.stderr
        assert '"value": "Z28="' in got.stdout


def test_ls_says_a_connect_plugin_go_host_has_no_listing() -> None:
    with go_host() as url:
        listed = plugin_di("ls", url, "--self-id", "ops")
        assert listed.returncode == 3
        assert "ls needs a plugin-di host" in listed.stderr
