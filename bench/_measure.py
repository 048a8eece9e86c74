"""Timing primitives for the benchmarks: sequential rate and latency, concurrent throughput."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Call = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Sample:
    """One timed run of one case."""

    rate: float
    """calls per second"""
    p50_us: float
    p99_us: float | None
    """None where the measuring party reports no p99 (the Go peer's client)"""


async def sequential(call: Call, seconds: float) -> Sample:
    """Call one at a time for ``seconds``; every call is timed."""
    latencies: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    start = clock()
    while True:
        before = clock()
        await call()
        after = clock()
        latencies.append(after - before)
        if after >= deadline:
            break
    elapsed = (clock() - start) / 1e9
    return _sample(len(latencies) / elapsed, latencies)


async def concurrent(call: Call, seconds: float, in_flight: int = 32) -> Sample:
    """Keep ``in_flight`` calls running for ``seconds``."""
    latencies: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)

    async def worker() -> None:
        while clock() < deadline:
            before = clock()
            await call()
            latencies.append(clock() - before)

    start = clock()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = (clock() - start) / 1e9
    return _sample(len(latencies) / elapsed, latencies)


def _sample(rate: float, latencies_ns: list[int]) -> Sample:
    ordered = sorted(latencies_ns)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return Sample(rate, p50, p99)


def median_sample(samples: list[Sample]) -> Sample:
    """Median of each figure across interleaved rounds."""
    p99s = [s.p99_us for s in samples if s.p99_us is not None]
    return Sample(
        statistics.median(s.rate for s in samples),
        statistics.median(s.p50_us for s in samples),
        statistics.median(p99s) if p99s else None,
    )
