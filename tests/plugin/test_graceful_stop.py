"""A served plugin stopped by SIGTERM under load: every call it accepted gets its answer.

16 callers (HTTP/1.1 and HTTP/2) and a Watch run against a real `plugin-di serve` process
while it is told to stop. A call either succeeds or is refused cleanly because the listener
had closed (never a connection dropped with no answer); the Watch ends with its stream's
clean end; the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal

from connectrpc.errors import ConnectError

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.store import WATCH_STARTED
from plugin_di.rpc.transport import connect_client, http_client
from tests.support.processes import SERVE_KV, running

CALLERS = 16
CALLS_BEFORE_STOP = 200
MAX_CALLS = 5000  # bounds each caller's loop


async def test_sigterm_under_load_answers_every_accepted_call() -> None:
    with running(SERVE_KV) as plugin:
        address = plugin.line.address
        urls = [f"http://{address}", f"http+h2c://{address}"]  # HTTP/1.1, HTTP/2
        answered = 0
        refused: list[str] = []
        dropped: list[str] = []
        stop_sent = asyncio.Event()

        async def caller(index: int) -> None:
            nonlocal answered
            url = urls[index % 2]
            async with http_client(url) as http:
                kv = connect_client(KVServiceClient, url, http, timeout_ms=10_000)
                for n in range(MAX_CALLS):
                    try:
                        await kv.put(pb.PutRequest(key=f"k{index}", value=b"%d" % n))
                    except ConnectError as error:
                        text = error.message.lower()
                        clean = "refused" in text or "cannot connect" in text  # listener closed
                        (refused if clean else dropped).append(error.message)
                        return
                    answered += 1
                    if answered >= CALLS_BEFORE_STOP and not stop_sent.is_set():
                        stop_sent.set()
                        plugin.proc.send_signal(signal.SIGTERM)

        async def watcher() -> list[str]:
            url = urls[0]
            async with http_client(url) as http:
                kv = connect_client(KVServiceClient, url, http)
                return [event.key async for event in kv.watch(pb.WatchRequest(prefix="k0"))]

        watch = asyncio.create_task(watcher())
        async with asyncio.timeout(60):
            await asyncio.gather(*(caller(i) for i in range(CALLERS)))
            keys = await watch
        assert stop_sent.is_set()
        assert dropped == [], dropped[:3]
        assert len(refused) == CALLERS  # each caller ended on the closed listener
        assert keys[0] == WATCH_STARTED  # and the watch ended cleanly, with its events
        assert "k0" in keys
        assert plugin.wait(20) == 0
