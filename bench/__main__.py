"""``make bench``: every call path side by side, measured in one run on this machine.

Sequential and 32-in-flight figures are medians of interleaved rounds (each
round runs every case once, so drift hits all cases alike), after a warm-up.
Writes bench/results.json. ``--quick`` runs every case briefly (``make test``
runs it so the benchmark never rots; it asserts nothing about timings).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bench import channels, cold_start, edge, gopeer, memory, multihost
from bench import lifecycle as lifecycle_bench
from bench._measure import Sample, concurrent, median_sample, sequential
from bench.security import measure_security
from plugin_di import eventloop

RESULTS = Path(__file__).resolve().parent / "results.json"

FAST = "process, Unix socket (lean h1)"
FAST_SYNC = "process, Unix socket, sync client"
PLAIN = "process, TCP, plain http:// (h1)"
H2C = "process, h2c (pyqwest)"
GRPCIO_TO_SERVED = "process, gRPC h2c (grpcio stub)"
ROUTED = "routed via host fast channel (UDS)"
ROUTED_H2C = "routed via host h2c"
GRPCIO = "grpcio server + stub"

COLD_ROWS = (  # label, key of _cold_starts, note
    (
        "cold start, one plugin, forked (default)",
        "one",
        " (app's warm zygote: ready to first call)",
    ),
    (
        "cold start, eight via the engine, forked",
        "eight",
        " (app's warm zygote: ready to all eight)",
    ),
    (
        "app from nothing, one plugin",
        "app_one",
        " (App.start to first call, zygote start included)",
    ),
    ("app from nothing, eight plugins", "app_eight", " (zygote start included)"),
    ("cold start, one plugin spawned, fast", "fast", " (spawn to first call, no engine)"),
    ("cold start, one plugin spawned, h2c", "h2c", " (spawn to first call, no engine)"),
    ("cold start, eight spawned via the engine", "eight_spawn", " (PLUGIN_DI_ZYGOTE=0)"),
    ("bare zygote start (imports, once)", "zygote_ready", ""),
    ("one forked by a bare zygote", "zygote_one", " (fork to first call)"),
    ("eight forked at once by a bare zygote", "zygote_eight", ""),
)

CaseFactory = Callable[[], contextlib.AbstractAsyncContextManager[channels.Call]]

SEQUENTIAL: dict[str, CaseFactory] = {
    "direct Python call": channels.direct_python,
    "in-memory plugin, direct dispatch": lambda: channels.in_memory("direct"),
    "in-memory plugin, in-process ASGI": lambda: channels.in_memory("asgi"),
    FAST: lambda: channels.process_plugin("uds"),
    FAST_SYNC: channels.fast_channel_sync,
    PLAIN: lambda: channels.process_plugin("plain"),
    ROUTED: channels.routed,
    ROUTED_H2C: lambda: channels.routed("h2c"),
    H2C: lambda: channels.process_plugin("h2c"),
    GRPCIO_TO_SERVED: channels.grpcio_to_served,
    "process, TLS h2": lambda: channels.process_plugin("tls"),
    GRPCIO: channels.grpcio_baseline,
}
CONCURRENT = (FAST, PLAIN, H2C, GRPCIO_TO_SERVED, GRPCIO)


@dataclass
class Rounds:
    """Every round's samples: Python cases sequential and 32 in flight, the Go client's."""

    seq: dict[str, list[Sample]]
    conc: dict[str, list[Sample]]
    go: edge.GoRuns | None
    """None when the Go peer is missing"""


async def _rounds(rounds: int, seconds: float) -> Rounds:
    cases = dict(SEQUENTIAL)
    go_missing = gopeer.missing()
    seq: dict[str, list[Sample]] = {}
    conc: dict[str, list[Sample]] = {name: [] for name in CONCURRENT}
    go: edge.GoRuns | None = None if go_missing else {}
    async with contextlib.AsyncExitStack() as stack:
        peers = None if go_missing else await stack.enter_async_context(edge.peers())
        if peers is not None:
            cases[edge.CLIENT_TO_GO] = lambda: edge.client_call(peers.go_url)
            cases[edge.SYNC_CLIENT_TO_GO] = lambda: edge.sync_client_call(peers.go_url)
        calls = {name: await stack.enter_async_context(f()) for name, f in cases.items()}
        seq = {name: [] for name in calls}
        for call in calls.values():  # warm-up: connections, caches
            await sequential(call, seconds / 2)
        for _ in range(rounds):
            for name, call in calls.items():
                seq[name].append(await sequential(call, seconds))
            for name in CONCURRENT:
                conc[name].append(await concurrent(calls[name], seconds))
            if peers is not None and go is not None:
                await edge.go_round(peers, seconds, go)
    await asyncio.sleep(0.05)  # let pyqwest's threads settle before the loop ends
    return Rounds(seq, conc, go)


async def _cold_starts(runs: int) -> dict[str, float]:
    """Medians, interleaved, so drift hits every case alike."""
    cases: dict[str, list[float]] = {
        k: [] for k in ("one", "eight", "app_one", "app_eight", "fast", "h2c", "eight_spawn")
    }
    for i in range(runs):
        cases["app_one"].append((one := await cold_start.app_start(1))[0])
        cases["one"].append(one[1])
        cases["app_eight"].append((eight := await cold_start.app_start(8))[0])
        cases["eight"].append(eight[1])
        cases["fast"].append(await cold_start.one_plugin("fast"))
        cases["h2c"].append(await cold_start.one_plugin("h2c"))
        if i % 2 == 0:  # a second each: every other round
            cases["eight_spawn"].append((await cold_start.app_start(8, zygote=False))[0])
    rss = await cold_start.idle_plugin_rss_mib()
    zygote = await cold_start.zygote_starts(runs)
    await asyncio.sleep(0.05)
    cold = {name: statistics.median(values) for name, values in cases.items()}
    cold.update({f"zygote_{k}": v for k, v in zygote.items()})
    return {**cold, "rss": rss}


def _row(name: str, s: Sample, baseline: float) -> str:
    p99 = f"{s.p99_us:>9.0f}" if s.p99_us is not None else f"{'-':>9}"
    return f"{name:<40}{s.rate:>10,.0f}{s.p50_us:>9.0f}{p99}{s.rate / baseline:>10.2f}x"


def _table(seq: dict[str, Sample], conc: dict[str, Sample]) -> str:
    lines = [f"{'call path':<40}{'calls/s':>10}{'p50 µs':>9}{'p99 µs':>9}{'vs grpcio':>11}"]
    lines += [_row(name, s, seq[GRPCIO].rate) for name, s in seq.items()]
    lines.append("")
    lines.append(f"{'32 calls in flight':<40}{'calls/s':>10}{'p50 µs':>9}{'p99 µs':>9}")
    lines += [_row(name, s, conc[GRPCIO].rate) for name, s in conc.items()]
    return "\n".join(lines)


def _loop_kind() -> eventloop.EventLoopKind:
    kind = os.environ.get("PLUGIN_DI_EVENT_LOOP", "auto")
    return cast(eventloop.EventLoopKind, kind if kind in ("uvloop", "asyncio") else "auto")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="every case briefly")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file ({RESULTS})")
    args = parser.parse_args(argv)
    rounds, seconds, cold_runs = (1, 0.2, 1) if args.quick else (5, 2.0, 10)

    # The loop plugin-di runs apps and its CLI on (uvloop unless PLUGIN_DI_EVENT_LOOP says
    # otherwise): the callers measured here are plugin-di's own clients.
    measured = eventloop.run(_rounds(rounds, seconds), _loop_kind())
    seq = {n: median_sample(s) for n, s in measured.seq.items()}
    conc = {n: median_sample(s) for n, s in measured.conc.items()}
    public_edge = edge.results(measured.seq, measured.go, PLAIN, GRPCIO)
    cold = asyncio.run(_cold_starts(cold_runs))
    host_kib = asyncio.run(memory.host_kib_per_plugin(20 if args.quick else 300))
    repeat = 1 if args.quick else 5
    lifecycle_1k = lifecycle_bench.measure(1_000, repeat=repeat)["total"]
    lifecycle_10k = lifecycle_bench.measure(10_000, repeat=repeat)["total"]
    security = measure_security(n=20_000 if args.quick else 300_000, rounds=1 if args.quick else 5)
    shared = multihost.measure(args.quick)

    print(_table(seq, conc))
    print()
    print(edge.table(public_edge, measured.go))
    if measured.go is None:
        print(f"Go peer cases skipped: {gopeer.missing()}")
    print()
    for label, key, note in COLD_ROWS:
        print(f"{label:<46}{cold[key]:8.0f} ms{note}")
    print(f"{'eight / one, forked (target <= 2x)':<46}{cold['eight'] / cold['one']:8.1f} x")
    print(f"{'eight / one, app from nothing':<46}{cold['app_eight'] / cold['app_one']:8.1f} x")
    print(f"idle plugin process RSS:          {cold['rss']:8.1f} MiB")
    print(f"host memory per registered plugin:{host_kib:8.1f} KiB")
    print(f"lifecycle, 1,000 providers:       {lifecycle_1k:8.3f} s")
    print(f"lifecycle, 10,000 providers:      {lifecycle_10k:8.3f} s")
    print(f"token validations:                {security.token_validations:12,.0f} /s")
    print(f"rate-limiter checks:              {security.limiter_checks:12,.0f} /s")
    print(multihost.report(shared))

    fast = seq[FAST]
    results: dict[str, Any] = {
        "process_unary_rps": fast.rate,
        "process_sync_unary_rps": seq[FAST_SYNC].rate,
        "process_h2c_unary_rps": seq[H2C].rate,
        "process_grpcio_h2c_unary_rps": seq[GRPCIO_TO_SERVED].rate,
        "process_grpcio_h2c_concurrent_rps": conc[GRPCIO_TO_SERVED].rate,
        "process_plain_concurrent_rps": conc[PLAIN].rate,
        "grpcio_unary_rps": seq[GRPCIO].rate,
        "process_concurrent_rps": conc[FAST].rate,
        "process_h2c_concurrent_rps": conc[H2C].rate,
        "grpcio_concurrent_rps": conc[GRPCIO].rate,
        "inmemory_direct_rps": seq["in-memory plugin, direct dispatch"].rate,
        "inmemory_asgi_rps": seq["in-memory plugin, in-process ASGI"].rate,
        "process_p50_us": fast.p50_us,
        "routed_p50_us": seq[ROUTED].p50_us,
        "cold_start_ms": cold["one"],
        "cold_start_8_ms": cold["eight"],
        "cold_start_app_ms": cold["app_one"],
        "cold_start_app_8_ms": cold["app_eight"],
        "cold_start_spawn_ms": cold["fast"],
        "cold_start_h2c_ms": cold["h2c"],
        "cold_start_8_spawn_ms": cold["eight_spawn"],
        "plugin_idle_rss_mib": cold["rss"],
        "host_kib_per_plugin": host_kib,
        "zygote_ready_ms": cold["zygote_ready"],
        "cold_start_zygote_ms": cold["zygote_one"],
        "cold_start_8_zygote_ms": cold["zygote_eight"],
        "lifecycle_1k_s": lifecycle_1k,
        "lifecycle_10k_s": lifecycle_10k,
        "token_validations_per_s": security.token_validations,
        "ratelimit_checks_per_s": security.limiter_checks,
        **public_edge,
        "go_peer_missing": gopeer.missing(),
        **shared,
        "quick": args.quick,
        "machine": {
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "sequential": {n: vars(s) for n, s in seq.items()},
        "concurrent": {n: vars(s) for n, s in conc.items()},
        "go_client": {
            f"{name}, {in_flight} in flight": [vars(s) for s in samples]
            for (name, in_flight), samples in (measured.go or {}).items()
        },
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
