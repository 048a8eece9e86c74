"""``python -m bench --quick`` runs every case end to end (timings are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import gopeer
from tests.support.processes import ROOT, plugin_env

REQUIRED = (
    "process_unary_rps",
    "grpcio_unary_rps",
    "process_concurrent_rps",
    "grpcio_concurrent_rps",
    "inmemory_direct_rps",
    "inmemory_asgi_rps",
    "process_p50_us",
    "routed_p50_us",
    "cold_start_ms",
    "cold_start_8_ms",
    "cold_start_app_ms",
    "cold_start_app_8_ms",
    "cold_start_spawn_ms",
    "cold_start_h2c_ms",
    "cold_start_8_spawn_ms",
    "zygote_ready_ms",
    "cold_start_zygote_ms",
    "cold_start_8_zygote_ms",
    "lifecycle_1k_s",
    "lifecycle_10k_s",
    "token_validations_per_s",
    "ratelimit_checks_per_s",
    "plugin_idle_rss_mib",
    "host_kib_per_plugin",
    # bench/multihost.py: several hosts on one redis-server
    "store_register_ops_per_s",
    "store_register_concurrent_ops_per_s",
    "store_discover_ops_per_s",
    "routed_p50_single_host_us",
    "routed_p50_second_host_us",
    "routed_second_host_ratio",
    "failover_routable_ms",
    # bench/edge.py: the public edge
    "served_http_vs_grpcio",
    "served_http_rps",
    "served_http_p50_us",
    "process_grpcio_h2c_unary_rps",
    "process_grpcio_h2c_concurrent_rps",
    "process_plain_concurrent_rps",
    "grpcio_p50_us",
)
# Measured with the Go peer (../shared/go-peer) in the same run; absent without it.
REQUIRED_WITH_GO_PEER = (
    "served_vs_go_seq",
    "served_vs_go_32",
    "client_to_go_vs_go",
    "go_server_seq_rps",
    "go_server_seq_p50_us",
    "go_server_32_rps",
    "go_server_32_p50_us",
    "served_go_client_seq_rps",
    "served_go_client_seq_p50_us",
    "served_go_client_32_rps",
    "served_go_client_32_p50_us",
    "client_to_go_rps",
    "client_to_go_p50_us",
)


@pytest.mark.timeout(180)
def test_quick_bench_runs_every_case(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=plugin_env(),
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    required = REQUIRED
    if gopeer.missing() is None:
        required += REQUIRED_WITH_GO_PEER
        assert results["go_peer_missing"] is None
    else:
        assert all(key not in results for key in REQUIRED_WITH_GO_PEER)
        assert "Go peer cases skipped" in run.stdout
    for key in required:
        assert isinstance(results[key], (int, float)), key
        assert results[key] > 0, key
    for key in ("served_http_vs_grpcio", *REQUIRED_WITH_GO_PEER[:3]):
        if key in results:
            low, high = results["edge_ratio_ranges"][key]
            assert 0 < low <= high, key
    assert results["quick"] is True
    assert "grpcio server + stub" in run.stdout
