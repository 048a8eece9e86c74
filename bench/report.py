"""The figures of docs/performance.md, rendered from a results file (bench/results.json).

``python -m bench.report`` prints the Markdown; ``--write docs/performance.md`` puts it
between the page's markers. tests/docs checks that the page holds exactly what the committed
results.json renders to, so every figure the page states comes from the recorded run.
Standard library only: it never measures anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"
BEGIN = "<!-- bench.report: begin (generated from bench/results.json; do not edit) -->"
END = "<!-- bench.report: end -->"

Results = dict[str, Any]
TIMES = "\u00d7"  # the multiplication sign, after a ratio
DASH = "\u2013"  # the en dash, between the ends of a range


@dataclass(frozen=True)
class Target:
    """A figure the project aims at: ``value(results) <op> bound``."""

    name: str
    value: Callable[[Results], float]
    at_least: bool
    bound: float
    unit: str = TIMES
    needs: tuple[str, ...] = ()
    """keys without which the target is not measured (the Go peer's, when it was missing)"""


TARGETS = (
    Target(
        "`served_vs_go_seq`: the Go client calling `plugin-di serve`, over calling the Go "
        "server, sequential",
        lambda r: r["served_vs_go_seq"],
        True,
        0.9,
        needs=("served_vs_go_seq",),
    ),
    Target(
        "`served_vs_go_32`: the same, 32 in flight",
        lambda r: r["served_vs_go_32"],
        True,
        0.5,
        needs=("served_vs_go_32",),
    ),
    Target(
        "`client_to_go_vs_go`: plugin-di's client calling the Go server, over the Go client",
        lambda r: r["client_to_go_vs_go"],
        True,
        0.9,
        needs=("client_to_go_vs_go",),
    ),
    Target(
        "`served_http_vs_grpcio`: plugin-di's client calling `plugin-di serve` at a plain "
        "`http://` URL, over grpcio",
        lambda r: r["served_http_vs_grpcio"],
        True,
        3,
    ),
    Target(
        "sequential unary on the Unix socket, over grpcio",
        lambda r: r["process_unary_rps"] / r["grpcio_unary_rps"],
        True,
        2.5,
    ),
    Target(
        "32 in flight on the Unix socket, over grpcio",
        lambda r: r["process_concurrent_rps"] / r["grpcio_concurrent_rps"],
        True,
        4,
    ),
    Target(
        "in-memory direct dispatch, over in-process ASGI",
        lambda r: r["inmemory_direct_rps"] / r["inmemory_asgi_rps"],
        True,
        5,
    ),
    Target(
        "routed p50, over a direct process call's p50",
        lambda r: r["routed_p50_us"] / r["process_p50_us"],
        False,
        1.6,
    ),
    Target(
        "cold start of one plugin (default path: forked from the app's zygote)",
        lambda r: r["cold_start_ms"],
        False,
        150,
        " ms",
    ),
    Target(
        "eight plugins forked together, over one",
        lambda r: r["cold_start_8_ms"] / r["cold_start_ms"],
        False,
        2,
    ),
    Target("lifecycle of 10,000 providers", lambda r: r["lifecycle_10k_s"], False, 1, " s"),
    Target(
        "lifecycle of 10,000 providers, over 1,000",
        lambda r: r["lifecycle_10k_s"] / r["lifecycle_1k_s"],
        False,
        12,
    ),
    Target(
        "routed p50 through a second host, over one host",
        lambda r: r["routed_second_host_ratio"],
        False,
        1.2,
    ),
)


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _calls(rows: dict[str, dict[str, float | None]], baseline: float) -> list[str]:
    lines = ["| call path | calls/s | p50 µs | p99 µs | vs grpcio |", "|---|---:|---:|---:|---:|"]
    for name, s in rows.items():
        p99 = DASH if s["p99_us"] is None else _n(s["p99_us"])
        rate, p50 = float(s["rate"] or 0), float(s["p50_us"] or 0)
        lines.append(f"| {name} | {_n(rate)} | {_n(p50)} | {p99} | {rate / baseline:.2f}{TIMES} |")
    return lines


def _edge(r: Results) -> list[str]:
    if r.get("go_peer_missing"):
        return [f"The Go peer's cases were skipped in this run: {r['go_peer_missing']}."]
    lines = ["| case | calls/s | p50 µs |", "|---|---:|---:|"]
    for label, key in (
        ("Go client → Go server, sequential", "go_server_seq"),
        ("Go client → `plugin-di serve`, sequential", "served_go_client_seq"),
        ("Go client → Go server, 32 in flight", "go_server_32"),
        ("Go client → `plugin-di serve`, 32 in flight", "served_go_client_32"),
        (f"plugin-di {r['client_to_go_client']} client → Go server, sequential", "client_to_go"),
    ):
        lines.append(f"| {label} | {_n(r[key + '_rps'])} | {_n(r[key + '_p50_us'])} |")
    lines += ["", "| ratio | median | per-round range |", "|---|---:|---|"]
    for key, (low, high) in r["edge_ratio_ranges"].items():
        lines.append(f"| `{key}` | {r[key]:.2f}{TIMES} | {low:.2f}{DASH}{high:.2f} |")
    return lines


def _other(r: Results) -> list[str]:
    rows = [
        (
            "cold start, one plugin, forked from the app's zygote (default)",
            r["cold_start_ms"],
            "ms",
        ),
        ("cold start, eight plugins through the engine, forked", r["cold_start_8_ms"], "ms"),
        ("an App from nothing to the first call, one plugin", r["cold_start_app_ms"], "ms"),
        ("an App from nothing, eight plugins", r["cold_start_app_8_ms"], "ms"),
        ("one plugin spawned (no zygote), Unix socket", r["cold_start_spawn_ms"], "ms"),
        ("one plugin spawned (no zygote), h2c", r["cold_start_h2c_ms"], "ms"),
        (
            "eight spawned through the engine (`PLUGIN_DI_ZYGOTE=0`)",
            r["cold_start_8_spawn_ms"],
            "ms",
        ),
        ("a bare zygote's start (imports, once)", r["zygote_ready_ms"], "ms"),
        ("one forked by a bare zygote", r["cold_start_zygote_ms"], "ms"),
        ("eight forked at once by a bare zygote", r["cold_start_8_zygote_ms"], "ms"),
        ("idle plugin process RSS", r["plugin_idle_rss_mib"], "MiB"),
        ("host memory per registered plugin", r["host_kib_per_plugin"], "KiB"),
        ("lifecycle, 1,000 providers", r["lifecycle_1k_s"], "s"),
        ("lifecycle, 10,000 providers", r["lifecycle_10k_s"], "s"),
        ("token validations", r["token_validations_per_s"], "/s"),
        ("rate-limiter checks", r["ratelimit_checks_per_s"], "/s"),
        (
            "shared store: registrations committed, one at a time",
            r["store_register_ops_per_s"],
            "/s",
        ),
        (
            "shared store: registrations, 16 in flight",
            r["store_register_concurrent_ops_per_s"],
            "/s",
        ),
        ("shared store: discover (replica)", r["store_discover_ops_per_s"], "/s"),
        ("memory store: discover", r["memory_discover_ops_per_s"], "/s"),
        ("routed p50, one host (`memory://`)", r["routed_p50_single_host_us"], "µs"),
        ("routed p50, through a second host", r["routed_p50_second_host_us"], "µs"),
        ("a host killed: routable again after", r["failover_routable_ms"], "ms"),
        ("route checks per call, memory store", r["route_check_memory_ns"], "ns"),
        ("route checks per call, shared store's replica", r["route_check_shared_ns"], "ns"),
    ]
    lines = ["| measurement | value |", "|---|---:|"]
    for label, value, unit in rows:
        digits = 3 if unit == "s" else 1 if unit in ("MiB", "KiB") else 0
        lines.append(f"| {label} | {_n(value, digits)} {unit} |")
    return lines


def _targets(r: Results) -> list[str]:
    lines = ["| target | bound | this run | met? |", "|---|---:|---:|---|"]
    for t in TARGETS:
        if any(r.get(key) is None for key in t.needs):
            lines.append(f"| {t.name} | | not measured | |")
            continue
        value = t.value(r)
        met = value >= t.bound if t.at_least else value <= t.bound
        op = "≥" if t.at_least else "≤"
        shown = f"{value:.0f}" if t.unit == " ms" else f"{value:.2f}"
        lines.append(
            f"| {t.name} | {op} {t.bound:g}{t.unit} | {shown}{t.unit} | "
            f"{'yes' if met else '**no**'} |"
        )
    return lines


def render(r: Results) -> str:
    """The Markdown tables of one results file."""
    m = r["machine"]
    parts = [
        f"Recorded run: CPython {m['python']}, {m['cpus']} CPUs, {m['platform']}"
        + (" (a quick run: smoke figures only)" if r.get("quick") else "")
        + ".",
        "",
        "### Calls, one at a time",
        "",
        *_calls(r["sequential"], r["grpcio_unary_rps"]),
        "",
        "### 32 calls in flight",
        "",
        *_calls(r["concurrent"], r["grpcio_concurrent_rps"]),
        "",
        "### The public edge: plugin-di and connect-plugin-go",
        "",
        *_edge(r),
        "",
        "### Starts, memory, the host",
        "",
        *_other(r),
        "",
        "### Targets",
        "",
        *_targets(r),
    ]
    return "\n".join(parts)


def embed(page: str, tables: str) -> str:
    """``page`` with the text between its markers replaced by ``tables``."""
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the page lacks the markers {BEGIN!r} ... {END!r}")
    return f"{head}{BEGIN}\n{tables}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"({RESULTS})")
    parser.add_argument("--write", type=Path, help="a page with the markers to update")
    args = parser.parse_args(argv)
    tables = render(json.loads(args.results.read_text()))
    if args.write is None:
        sys.stdout.write(tables + "\n")
    else:
        args.write.write_text(embed(args.write.read_text(), tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
