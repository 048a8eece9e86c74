"""The Go peer as a benchmark party: connect-plugin-go's own KV server and its client's bench.

``../shared/go-peer/bin`` (from the project root) holds ``gokvserver``, connect-plugin-go's
server (plain ``net/http``: HTTP/1.1 on cleartext), and ``gokvclient``, whose
``bench -endpoint URL -n N -c C`` handshakes, dispenses the KV client, puts a key, makes 200
warm-up ``Get`` calls and then N timed ones, C in flight, and prints
``BENCH calls_per_s=X p50_us=Y``. Its client is connect-go on Go's default ``http.Client``
(HTTP/1.1 keep-alive, two idle connections kept per host).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from bench._measure import Sample

ROOT = Path(__file__).resolve().parent.parent
GO_PEER = ROOT.parent / "shared" / "go-peer"
_BIN = GO_PEER / "bin"
_ENV = {**os.environ, "CONNECTPLUGIN_DISABLE_TLS_WARNING": "1"}
_BENCH_LINE = re.compile(rb"BENCH calls_per_s=([\d.]+) p50_us=([\d.]+)")
_START_TRIES = 5


def missing() -> str | None:
    """Why the Go peer cannot run here, or None when it can."""
    for name in ("gokvserver", "gokvclient"):
        binary = _BIN / name
        if not os.access(binary, os.X_OK):
            return f"{binary} is missing (the Go peer lives in ../shared/go-peer)"
    return None


def free_port() -> int:
    """A loopback port that was free a moment ago (gokvserver does not take port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def go_server() -> AsyncIterator[str]:
    """``gokvserver`` on a free loopback port, until the block ends; yields its URL."""
    for _ in range(_START_TRIES):  # another process may take the port between probe and bind
        process = await asyncio.create_subprocess_exec(
            str(_BIN / "gokvserver"),
            "-addr",
            f"127.0.0.1:{free_port()}",
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_ENV,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        if line.startswith(b"GOKV_SERVING "):
            break
        await process.wait()
    else:
        raise RuntimeError(f"gokvserver did not start in {_START_TRIES} tries")
    try:
        yield line.split()[1].decode()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def go_client(url: str, calls: int, in_flight: int) -> Sample:
    """``gokvclient bench`` against ``url``: its calls/s and p50 (it reports no p99)."""
    process = await asyncio.create_subprocess_exec(
        str(_BIN / "gokvclient"),
        "bench",
        "-endpoint",
        url,
        "-n",
        str(calls),
        "-c",
        str(in_flight),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_ENV,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    found = _BENCH_LINE.search(out)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"gokvclient bench {url} -c {in_flight} failed: {out.decode()[-500:]}")
    return Sample(float(found[1]), float(found[2]), None)
