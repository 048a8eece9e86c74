"""A plugin process on the fast channel loads only what serving needs.

A fresh interpreter serves the KV plugin on a Unix socket, answers one call, stops, and
reports which heavy or host-side modules it had loaded: none may be there. networkx alone
costs ~150 ms of imports; the host, the DI engine and hypercorn are never needed to serve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import asyncio, io, json, sys, tempfile
from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import plugin
from plugin_di.plugin.server import serve_async
from plugin_di.rpc.transport import connect_client, http_client

FORBIDDEN = ("networkx", "dependency_injector", "hypercorn", "plugin_di.host", "plugin_di.di",
             "plugin_di.launch")

async def main():
    ready = asyncio.get_running_loop().create_future()
    with tempfile.TemporaryDirectory() as tmp:
        serving = asyncio.create_task(serve_async(
            plugin, uds=tmp + "/kv.sock", stdout=io.StringIO(), handle_signals=False,
            watch_parent=False, environ={}, on_ready=lambda s, line: ready.set_result((s, line))))
        server, line = await asyncio.wait_for(ready, 30)
        async with http_client(line.url) as http:
            await connect_client(KVServiceClient, line.url, http).put(
                pb.PutRequest(key="k", value=b"v"))
        server.request_stop(0.1, "test over")
        await asyncio.wait_for(serving, 30)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("networkx",
        "dependency_injector", "hypercorn") or m.startswith(FORBIDDEN[3:]))
    print(json.dumps(loaded))

asyncio.run(main())
"""


def test_a_serving_plugin_never_loads_networkx_the_host_or_the_engine() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
