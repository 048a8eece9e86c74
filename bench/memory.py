"""Memory: resident size of a Host process per registered plugin."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from bench.channels import ROOT
from examples.kv.plugin import make_plugin
from plugin_di.plugin.host_client import HostClient
from plugin_di.rpc.transport import http_client


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (Linux ``/proc``)."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def host_kib_per_plugin(count: int) -> float:
    """KiB a Host process grows by per plugin that handshakes and registers one service."""
    host = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.host_server",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert host.stdout is not None
        url = (await asyncio.wait_for(host.stdout.readline(), 30)).decode().strip()
        plugin = make_plugin()
        async with http_client(url) as http:
            warm = HostClient(url, http_client=http)  # first calls load code and caches
            await warm.handshake("kv", plugins=[plugin])  # admitted by bench.host_server
            await warm.register("kv", "1.0.0", "/kv.v1.KVService/", {"base_url": "unix:///x"})
            await asyncio.sleep(0.2)
            before = rss_kib(host.pid)
            for i in range(count):
                client = HostClient(url, http_client=http)
                await client.handshake("kv", plugins=[plugin])
                await client.register(
                    "kv", "1.0.0", "/kv.v1.KVService/", {"base_url": f"unix:///run/kv-{i}.sock"}
                )
            await asyncio.sleep(0.2)
            return (rss_kib(host.pid) - before) / count
    finally:
        if host.stdin is not None:
            host.stdin.close()
        try:
            await asyncio.wait_for(host.wait(), 10)
        except TimeoutError:
            host.kill()
            await host.wait()
