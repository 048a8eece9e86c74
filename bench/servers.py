"""``python -m bench.servers``: the public edge's server, chosen on measurement.

The same app (`bench.serve_app.app`: what ``plugin-di serve examples.kv.plugin:plugin``
serves) under plugin-di's own server (with its short path, and without it), uvicorn,
hypercorn, granian and pyvoy, each in its own process, next to the Go peer's own server.
Each server is first probed for what it speaks on its one port (Connect over HTTP/1.1 and
h2c, gRPC over h2c with a grpcio stub, gRPC-Web over HTTP/1.1), then called in interleaved
rounds by the Go peer's client (sequential and 32 in flight) and by plugin-di's client (the
lean HTTP/1.1 transport, sequential and 32 in flight). Medians and ranges over the rounds.

Needs the ``bench`` extra (``pip install -e '.[bench]'``) and ../shared/go-peer; not part of
``make bench`` or ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectrpc.protocol import ProtocolType

from bench import edge, gopeer
from bench._measure import Call, Sample, concurrent, sequential
from bench.channels import REQUEST, grpc_stubs
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from plugin_di.rpc.transport import HTTPMode, connect_client, http_client

ROOT = Path(__file__).resolve().parent.parent
_PY = sys.executable
_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
_PROBE_SECONDS = 10.0


@dataclass(frozen=True)
class Launch:
    """How to start one server: a command, and whether it prints ``PORT <n>`` or must be
    polled on a port chosen for it (``{port}`` in the command)."""

    command: tuple[str, ...]
    prints_port: bool = True


SERVERS: dict[str, Launch] = {
    "plugin-di serve (own server, short path)": Launch(
        (_PY, "-m", "plugin_di", "serve", "examples.kv.plugin:plugin", "--bind", "127.0.0.1:0")
    ),
    "plugin-di's server, ASGI only": Launch((_PY, "-m", "bench.serve_app", "plugin-di-asgi", "0")),
    "uvicorn (httptools, uvloop)": Launch((_PY, "-m", "bench.serve_app", "uvicorn", "0")),
    "hypercorn (uvloop)": Launch((_PY, "-m", "bench.serve_app", "hypercorn", "0")),
    "granian (--http auto, uvloop)": Launch(
        (
            _PY,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--loop",
            "uvloop",
            "--no-ws",
            "--http",
            "auto",
            "--workers",
            "1",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--log-level",
            "warning",
            "bench.serve_app:app",
        ),
        prints_port=False,
    ),
    "pyvoy (Envoy)": Launch((_PY, "-m", "bench.serve_app", "pyvoy", "0")),
}
GO_SERVER = "Go peer's server (net/http)"


@dataclass
class Runs:
    """One server's samples over the rounds."""

    go_seq: list[Sample] = field(default_factory=list)
    go_32: list[Sample] = field(default_factory=list)
    py_seq: list[Sample] = field(default_factory=list)
    py_32: list[Sample] = field(default_factory=list)


@contextlib.asynccontextmanager
async def launched(launch: Launch) -> AsyncIterator[str]:
    """Start a server in its own process group; yield its URL; stop the whole group."""
    port = 0 if launch.prints_port else gopeer.free_port()
    command = [part.replace("{port}", str(port)) for part in launch.command]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=_ENV,
        # Its own process group (granian forks a worker, pyvoy starts Envoy: stop the group),
        # but not its own session: with the kernel's scheduler autogroups, a process in
        # another session is scheduled as another group, which slows every call between the
        # two processes on a busy machine (measured: 2-3x fewer sequential calls/s).
        process_group=0,
    )
    try:
        assert process.stdout is not None
        if launch.prints_port:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            if line.startswith("PORT "):
                port = int(line.split()[1])
            else:  # plugin-di serve's handshake line: 1|1|tcp|127.0.0.1:PORT|connect|
                port = int(line.split("|")[3].rpartition(":")[2])
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def _until_answering(url: str) -> None:
    """Poll until the server answers a Connect call over HTTP/1.1 (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        try:
            async with edge.client_call(url) as call:
                await call()
            return
        except Exception:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _probe(attempt: Callable[[], Awaitable[object]]) -> str:
    try:
        await asyncio.wait_for(attempt(), _PROBE_SECONDS)
    except Exception as exc:
        return f"no ({type(exc).__name__})"
    return "yes"


async def protocols(url: str, stubs: Any) -> dict[str, str]:
    """What a server speaks on its one port, tried with real clients."""
    import grpc

    async def connect_call(mode: HTTPMode | None, protocol: ProtocolType) -> None:
        target = edge.plain_url(url) if mode is None else url
        options = {} if mode is None else {"http_version": mode}
        async with http_client(target, **options) as http:
            client = connect_client(KVServiceClient, target, http, protocol=protocol)
            await client.get(REQUEST)

    async def grpc_call() -> None:
        async with grpc.aio.insecure_channel(url.removeprefix("http://")) as channel:
            await stubs.KVServiceStub(channel).Get(REQUEST, timeout=_PROBE_SECONDS)

    return {
        "Connect, HTTP/1.1": await _probe(lambda: connect_call(None, ProtocolType.CONNECT)),
        "Connect, h2c": await _probe(lambda: connect_call(HTTPMode.H2, ProtocolType.CONNECT)),
        "gRPC, h2c (grpcio)": await _probe(grpc_call),
        "gRPC-Web, HTTP/1.1": await _probe(lambda: connect_call(None, ProtocolType.GRPC_WEB)),
    }


async def _round(
    urls: dict[str, str], calls: dict[str, Call], runs: dict[str, Runs], seconds: float, turn: int
) -> None:
    names = list(urls)
    names = names[turn % len(names) :] + names[: turn % len(names)]  # rotate the order
    seq_calls = max(400, int(4_000 * seconds))
    conc_calls = max(400, int(12_000 * seconds))
    for name in names:
        runs[name].go_seq.append(await gopeer.go_client(urls[name], seq_calls, 1))
        runs[name].py_seq.append(await sequential(calls[name], seconds))
    for name in names:
        runs[name].go_32.append(await gopeer.go_client(urls[name], conc_calls, 32))
        runs[name].py_32.append(await concurrent(calls[name], seconds))


async def measure(rounds: int, seconds: float, only: list[str]) -> dict[str, Any]:
    """Probe every server, then measure them all in interleaved rounds."""
    chosen = {n: s for n, s in SERVERS.items() if not only or any(o in n for o in only)}
    runs = {name: Runs() for name in [GO_SERVER, *chosen]}
    found: dict[str, dict[str, str]] = {}
    async with contextlib.AsyncExitStack() as stack:
        _, stubs = stack.enter_context(grpc_stubs())
        urls = {GO_SERVER: await stack.enter_async_context(gopeer.go_server())}
        for name, launch in chosen.items():
            urls[name] = await stack.enter_async_context(launched(launch))
            await _until_answering(urls[name])
        for name, url in urls.items():
            found[name] = await protocols(url, stubs)
        calls = {n: await stack.enter_async_context(edge.client_call(u)) for n, u in urls.items()}
        for call in calls.values():
            await sequential(call, seconds / 2)  # warm-up
        for turn in range(rounds):
            await _round(urls, calls, runs, seconds, turn)
    await asyncio.sleep(0.05)
    return {"protocols": found, "runs": {n: _summary(r) for n, r in runs.items()}}


def _spread(samples: list[Sample]) -> dict[str, float]:
    rates = [s.rate for s in samples]
    return {
        "rate": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "p50_us": statistics.median(s.p50_us for s in samples),
    }


def _summary(runs: Runs) -> dict[str, dict[str, float]]:
    return {
        "go_seq": _spread(runs.go_seq),
        "go_32": _spread(runs.go_32),
        "py_seq": _spread(runs.py_seq),
        "py_32": _spread(runs.py_32),
    }


def table(results: dict[str, Any]) -> str:
    """Two tables: what each server speaks, and how fast each is."""
    found: dict[str, dict[str, str]] = results["protocols"]
    columns = list(next(iter(found.values())))
    lines = [f"{'server':<42}" + "".join(f"{c:>22}" for c in columns)]
    for name, row in found.items():
        lines.append(f"{name:<42}" + "".join(f"{row[c]:>22}" for c in columns))
    lines.append("")
    runs: dict[str, dict[str, dict[str, float]]] = results["runs"]
    go = runs[GO_SERVER]
    head = ("Go client, seq", "Go client, 32", "plugin-di client, seq", "plugin-di client, 32")
    lines.append(
        f"{'calls/s, median [range] (x Go server)':<42}" + "".join(f"{h:>28}" for h in head)
    )
    for name, row in runs.items():
        cells = []
        for key in ("go_seq", "go_32", "py_seq", "py_32"):
            s = row[key]
            ratio = s["rate"] / go[key]["rate"]
            cells.append(f"{s['rate']:,.0f} [{s['min']:,.0f}-{s['max']:,.0f}] {ratio:.2f}x")
        lines.append(f"{name:<42}" + "".join(f"{c:>28}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per case and round")
    parser.add_argument("--only", nargs="*", default=[], help="servers whose name has these")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    reason = gopeer.missing()
    if reason is not None:
        print(f"bench.servers needs the Go peer: {reason}", file=sys.stderr)
        return 2
    results = asyncio.run(measure(args.rounds, args.seconds, args.only))
    results["load_average"] = os.getloadavg()
    print(table(results))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
