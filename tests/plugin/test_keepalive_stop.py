"""A session's keepalive stops when told to, even in the middle of a heartbeat."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.plugin.keepalive import Keepalive


class _HangingHeartbeat:
    """A session whose heartbeat never answers; cancelled, it raises what connectrpc
    raises for a cancelled call (ConnectError CANCELED), not CancelledError."""

    def __init__(self) -> None:
        self.client = SimpleNamespace(host_url="http://127.0.0.1:9", lease_ttl=None)
        self.heartbeats = 0
        self.in_heartbeat = asyncio.Event()

    async def heartbeat(self) -> None:
        self.heartbeats += 1
        self.in_heartbeat.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ConnectError(Code.CANCELED, "Request was cancelled") from None


async def test_stop_during_a_heartbeat_ends_the_keepalive() -> None:
    session = _HangingHeartbeat()
    keepalive = Keepalive(session, interval=60.0)  # type: ignore[arg-type]
    keepalive.start()
    keepalive.alarm()  # beat now
    await asyncio.wait_for(session.in_heartbeat.wait(), 5)
    running = keepalive._task
    stopping = asyncio.create_task(keepalive.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    if not done:  # it swallowed the cancellation and retried: end it for the next test
        assert running is not None
        running.cancel()
        stopping.cancel()
    assert stopping in done, "the keepalive retried the heartbeat instead of stopping"
    assert session.heartbeats == 1
