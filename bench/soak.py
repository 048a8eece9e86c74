"""A soak of the host: direct, routed and host calls plus Watch streams at a steady rate, for
minutes, with the host's and the plugin's RSS sampled and the host's allocations diffed.

``python -m bench.soak --minutes 5 --rate 300`` starts a Host in a child process (its TCP
listener and its local channel on a Unix socket, default limits), a KV plugin process on a Unix
socket that registers with it, and drives, each second: ``rate`` calls, half direct to the
plugin and half routed through the host (``--channel fast``: the local channel, HTTP/1.1;
``h2c``: the TCP listener over HTTP/2 with prior knowledge), a DiscoverService and a
ReportHealth, while ``--watchers`` routed Watch streams receive every Put. Every ``--sample``
seconds it prints both processes' RSS. With ``--tracemalloc FRAMES`` the host traces its
allocations: a snapshot after the warm-up and one at the end are compared, and the sites that
grew most are printed (``gc`` runs before each snapshot). ``--out FILE`` writes the figures as
JSON.
Not part of ``make bench``: it runs for minutes.

The host child is this module with ``--serve-host``: it prints its URLs, then obeys lines on
stdin (``snapshot PATH``, ``gc``) until end of file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.channels import ROOT, spawned
from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.rpc.transport import connect_client, http_client

MIB = 1024 * 1024


@dataclass
class Figures:
    """What a soak measured."""

    seconds: float
    rate: int
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    watch_events: int = 0
    samples: list[dict[str, float]] = field(default_factory=list)
    growth: list[str] = field(default_factory=list)


def rss_mib(pid: int) -> float:
    """The resident set size of process ``pid``, in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- the host child ------------------------------------------------------------------------


async def serve_host(frames: int, h2_closed_streams: int) -> None:
    """Serve a Host (TCP and its local channel) until stdin closes; obey its lines.

    ``h2_closed_streams`` (when not 0) replaces how many closed streams each HTTP/2
    connection remembers (1,024 in plugin-di's server; h2's own default is 65,536): an
    experiment knob.
    """
    from plugin_di.host.server import Host

    if h2_closed_streams:
        from plugin_di.rpc.serving import _h2

        _h2._H2State.MAX_CLOSED_STREAMS = h2_closed_streams
    if frames:
        tracemalloc.start(frames)
    from plugin_di.host.admission import AdmissionPolicy, AllowEntry

    admitted = (AllowEntry("kv", frozenset({"kv"})), AllowEntry("app"))
    host = Host(local_uds=True, admission=AdmissionPolicy(allow=admitted))
    url = await host.start("127.0.0.1:0")
    print(url, host.local_url, flush=True)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command, _, argument = line.strip().partition(" ")
            gc.collect()
            if command == "snapshot" and frames:
                tracemalloc.take_snapshot().dump(argument)
            print("ok", flush=True)
    finally:
        await host.stop()


class HostProcess:
    """The host child: its URLs, pid and command channel."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, local_url: str) -> None:
        self.process = process
        self.url = url
        self.local_url = local_url

    async def command(self, line: str) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        await asyncio.wait_for(self.process.stdout.readline(), 120)


@contextlib.asynccontextmanager
async def host_process(frames: int, h2_closed_streams: int) -> AsyncIterator[HostProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.soak",
        "--serve-host",
        "--tracemalloc",
        str(frames),
        "--h2-closed-streams",
        str(h2_closed_streams),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().split()
        yield HostProcess(process, line[0], line[1])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


# --- the load ------------------------------------------------------------------------------


async def paced(rate: float, seconds: float, call: Callable[[int], Awaitable[object]]) -> None:
    """Start ``rate`` calls a second (in ticks of 50 ms, concurrently within a tick)."""
    tick = 0.05
    per_tick = rate * tick
    owed = 0.0
    started = time.monotonic()
    n = 0
    while (now := time.monotonic()) - started < seconds:
        owed += per_tick
        batch = int(owed)
        owed -= batch
        await asyncio.gather(*(call(n + i) for i in range(batch)))
        n += batch
        await asyncio.sleep(max(0.0, tick - (time.monotonic() - now)))


async def soak(args: argparse.Namespace) -> Figures:
    from plugin_di.plugin.host_client import HostClient

    figures = Figures(seconds=args.minutes * 60, rate=args.rate)
    with tempfile.TemporaryDirectory() as tmp:
        plugin_pid: list[int] = []
        async with (
            host_process(args.tracemalloc, args.h2_closed_streams) as host,
            spawned("--uds", str(Path(tmp) / "kv.sock"), on_pid=plugin_pid.append) as line,
        ):
            h2c = host.url.replace("http://", "http+h2c://", 1)
            host_url = host.local_url if args.channel == "fast" else h2c
            async with http_client(host_url) as host_http, http_client(line.url) as direct_http:
                provider = HostClient(host_url, http_client=host_http)
                await provider.handshake("kv", plugins=[make_plugin()])
                await provider.register("kv", "1.0.0", "/kv.v1.KVService/", {"base_url": line.url})
                caller = HostClient(host_url, http_client=host_http)
                await caller.handshake("app")
                found = await caller.discover("kv")
                routed = caller.routed_client(KVServiceClient, found.endpoint)
                direct = connect_client(KVServiceClient, line.url, direct_http)
                await run_load(args, figures, host, plugin_pid[0], provider, caller, routed, direct)
    return figures


async def run_load(
    args: argparse.Namespace,
    figures: Figures,
    host: HostProcess,
    plugin_pid: int,
    provider: Any,
    caller: Any,
    routed: KVServiceClient,
    direct: KVServiceClient,
) -> None:
    seconds = args.minutes * 60

    async def counted(kind: str, call: Awaitable[object]) -> None:
        try:
            await call
            figures.calls[kind] += 1
        except Exception as exc:
            figures.errors[f"{kind}: {type(exc).__name__}: {exc}"[:160]] += 1

    async def kv_call(n: int) -> None:
        client, kind = (direct, "direct") if n % 2 else (routed, "routed")
        key = f"soak/{n % 512}"
        if n % 4 < 2:
            await counted(kind, client.put(pb.PutRequest(key=key, value=b"v" * 64)))
        else:
            await counted(kind, client.get(pb.GetRequest(key=key)))

    async def host_call(n: int) -> None:
        if n % 2:
            await counted("host", caller.discover("kv"))
        else:
            await counted("host", provider.report_health(1, "soak", []))

    async def watch() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            async for _ in routed.watch(pb.WatchRequest(prefix="soak/")):
                figures.watch_events += 1

    async def sample() -> None:
        started = time.monotonic()
        while True:
            figures.samples.append(
                {
                    "t": round(time.monotonic() - started, 1),
                    "host_mib": round(rss_mib(host.process.pid), 1),
                    "plugin_mib": round(rss_mib(plugin_pid), 1),
                    "calls": sum(figures.calls.values()),
                }
            )
            print(json.dumps(figures.samples[-1]), flush=True)
            await asyncio.sleep(args.sample)

    watchers = [asyncio.create_task(watch()) for _ in range(args.watchers)]
    sampler = asyncio.create_task(sample())
    before = Path(tempfile.gettempdir()) / f"soak-{os.getpid()}-a.snap"
    after = before.with_name(before.name.replace("-a.", "-b."))
    try:
        warmup = min(args.warmup, seconds / 4)
        load = asyncio.gather(paced(args.rate, seconds, kv_call), paced(2, seconds, host_call))
        await asyncio.sleep(warmup)
        if args.tracemalloc:
            await host.command(f"snapshot {before}")
        await load
        if args.tracemalloc:
            await host.command(f"snapshot {after}")
            figures.growth = growth(before, after, args.top)
    finally:
        for task in [*watchers, sampler]:
            task.cancel()
        for task in [*watchers, sampler]:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5)
        for path in (before, after):
            path.unlink(missing_ok=True)


def growth(before: Path, after: Path, top: int) -> list[str]:
    """The allocation sites that grew most between two snapshots (size, count, where)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first = tracemalloc.Snapshot.load(str(before)).filter_traces(ignore)
    second = tracemalloc.Snapshot.load(str(after)).filter_traces(ignore)
    lines = []
    for stat in second.compare_to(first, "traceback")[:top]:
        # Frames run from the oldest to the most recent: show where it was allocated first.
        where = " <- ".join(
            f"{Path(frame.filename).name}:{frame.lineno}" for frame in reversed(stat.traceback[-5:])
        )
        lines.append(
            f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  "
            f"(now {stat.size / 1024:.1f} KiB)  {where}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=300, help="KV calls per second")
    parser.add_argument("--watchers", type=int, default=4)
    parser.add_argument("--channel", choices=["fast", "h2c"], default="fast")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before snapshot A")
    parser.add_argument("--tracemalloc", type=int, default=0, help="frames to trace (0: off)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--h2-closed-streams",
        type=int,
        default=0,
        help="closed streams each HTTP/2 connection of the host remembers (0: the server's 1024)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--serve-host", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_host:
        asyncio.run(serve_host(args.tracemalloc, args.h2_closed_streams))
        return
    figures = asyncio.run(soak(args))
    first, last = figures.samples[0], figures.samples[-1]
    print(
        f"host RSS {first['host_mib']} -> {last['host_mib']} MiB, plugin RSS "
        f"{first['plugin_mib']} -> {last['plugin_mib']} MiB; calls {dict(figures.calls)}; "
        f"errors {sum(figures.errors.values())}; watch events {figures.watch_events}"
    )
    for error, count in figures.errors.most_common(5):
        print(f"  {count} x {error}")
    for line in figures.growth:
        print("  " + line)
    if args.out is not None:
        data = {**asdict(figures), "calls": dict(figures.calls), "errors": dict(figures.errors)}
        args.out.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
