"""Lifecycle engine benchmark: build + validate + start + stop of N in-memory providers.

The graph is layered: 20 layers, each provider needs two providers of the layer
below. Every provider is a Singleton whose object has async ``start`` and ``stop``,
so every node runs two hooks. Events go to no sink (logging is measured elsewhere).
Phases: *graph* (App() reads the container, validate()), *build* (every provider
called once, hooks collected), *start*, *stop*. Each figure is the median of fresh
runs; the garbage collector is off while timing, as `timeit` does (``--gc`` keeps it).

    python -m bench.lifecycle            # 1,000 and 10,000 providers
    python -m bench.lifecycle --quick    # 1,000 only

Target on a 2-core machine: 10,000 in at most 1 s, and at most 12x the 1,000 figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

from dependency_injector import containers, providers

from plugin_di.di.app import App
from plugin_di.settings import Settings

LAYERS = 20
FAN_IN = 2


class Service:
    """An in-memory service with async hooks that do no I/O."""

    __slots__ = ("deps", "running")

    def __init__(self, *deps: Service) -> None:
        self.deps = deps
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False


def layered_container(n: int, layers: int = LAYERS) -> containers.DynamicContainer:
    """``n`` Singletons in ``layers`` layers; each needs ``FAN_IN`` of the layer below."""
    container = containers.DynamicContainer()
    width = max(1, n // layers)
    below: list[providers.Provider[Any]] = []
    made = 0
    while made < n:
        layer: list[providers.Provider[Any]] = []
        for k in range(min(width, n - made)):
            deps = [below[(k + j) % len(below)] for j in range(FAN_IN)] if below else []
            provider = providers.Singleton(Service, *deps)
            setattr(container, f"s{made}", provider)
            layer.append(provider)
            made += 1
        below = layer
    return container


async def _cycle(n: int, keep_gc: bool) -> dict[str, float]:
    container = layered_container(n)
    settings = Settings(start_timeout=60, stop_timeout=60, hook_timeout=60)
    gc.collect()
    if not keep_gc:
        gc.disable()
    try:
        t0 = time.perf_counter()
        app = App(container, settings=settings, sinks=[])
        app.validate()
        t1 = time.perf_counter()
        await app.build()
        t2 = time.perf_counter()
        await app.start()
        t3 = time.perf_counter()
        await app.stop()
        t4 = time.perf_counter()
    finally:
        gc.enable()
    return {"graph": t1 - t0, "build": t2 - t1, "start": t3 - t2, "stop": t4 - t3, "total": t4 - t0}


def measure(n: int, repeat: int = 5, keep_gc: bool = False) -> dict[str, float]:
    """Median seconds of each phase over ``repeat`` fresh runs with ``n`` providers."""
    runs = [asyncio.run(_cycle(n, keep_gc)) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def run(quick: bool = False) -> tuple[float, float | None]:
    """Total seconds for 1,000 and 10,000 providers (None for 10,000 when ``quick``)."""
    small = measure(1_000)["total"]
    large = None if quick else measure(10_000)["total"]
    return small, large


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 providers only")
    parser.add_argument("--gc", action="store_true", help="keep the garbage collector on")
    args = parser.parse_args()
    sizes = [1_000] if args.quick else [1_000, 10_000]
    measure(1_000, repeat=1)  # warm-up: imports, caches
    results = {n: measure(n, keep_gc=args.gc) for n in sizes}
    phases = ["graph", "build", "start", "stop", "total"]
    print(f"{'providers':>10}" + "".join(f"{p:>10}" for p in phases))
    for n, r in results.items():
        print(f"{n:>10,}" + "".join(f"{r[p]:>9.3f}s" for p in phases))
    if len(results) == 2:
        small, large = results[1_000]["total"], results[10_000]["total"]
        verdict = "ok" if large <= 1.0 and large <= 12 * small else "MISSED"
        print(f"10,000 / 1,000 = {large / small:.1f}x (target: <= 1 s and <= 12x): {verdict}")


if __name__ == "__main__":
    main()
