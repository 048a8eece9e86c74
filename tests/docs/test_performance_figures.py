"""docs/performance.md states the figures of the committed bench/results.json, and only those:
its tables are what ``python -m bench.report`` renders from that file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "performance.md"


def test_the_page_holds_what_results_json_renders_to() -> None:
    tables = report.render(json.loads(report.RESULTS.read_text()))
    page = PAGE.read_text()
    assert report.embed(page, tables) == page, (
        "docs/performance.md differs from bench/results.json: "
        "run `python -m bench.report --write docs/performance.md`"
    )


def test_embed_replaces_only_the_text_between_the_markers() -> None:
    page = f"intro\n{report.BEGIN}\nold\n{report.END}\noutro\n"
    assert report.embed(page, "new") == f"intro\n{report.BEGIN}\nnew\n{report.END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        report.embed("no markers here", "new")


def test_a_changed_figure_shows_in_the_tables() -> None:
    results = json.loads(report.RESULTS.read_text())
    before = report.render(results)
    results["cold_start_ms"] = 123456.0
    after = report.render(results)
    assert "123,456 ms" not in before
    assert "123,456 ms" in after


def test_targets_say_met_or_not_from_the_figures() -> None:
    results = json.loads(report.RESULTS.read_text())
    results["routed_second_host_ratio"] = 2.0  # bound: <= 1.2
    row = next(line for line in report.render(results).splitlines() if "second host, over" in line)
    assert row.endswith("| **no** |")
    results["routed_second_host_ratio"] = 1.0
    row = next(line for line in report.render(results).splitlines() if "second host, over" in line)
    assert row.endswith("| yes |")


def test_a_run_without_the_go_peer_renders_and_says_why() -> None:
    results = json.loads(report.RESULTS.read_text())
    results["go_peer_missing"] = "../shared/go-peer not found"
    for key in ("served_vs_go_seq", "served_vs_go_32", "client_to_go_vs_go"):
        del results[key]
    tables = report.render(results)
    assert "skipped in this run: ../shared/go-peer not found" in tables
    assert tables.count("not measured") == 3
