"""Count the requests being served, so a graceful stop knows when the last one finished.

hypercorn's own graceful shutdown waits for every *connection* to close, and
an idle HTTP/2 connection from a host never does: the stop would always last
the whole grace period. The server instead waits here for in-flight requests,
cancels those still running when the grace period is over (hypercorn's own
timeout path crashes when it has to cut a request), and only then lets
hypercorn drop the idle connections.
"""

from __future__ import annotations

import asyncio

from plugin_di.rpc.asgi import ASGIApp, Receive, Scope, Send


class InFlight:
    """ASGI middleware counting HTTP requests in progress."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._tasks: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return len(self._tasks)

    def cancel_all(self) -> None:
        """Cancel every request still in progress (the grace period is over)."""
        for task in self._tasks:
            task.cancel()

    async def wait_idle(self) -> None:
        """Return once no request is in progress."""
        await self._idle.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._idle.clear()
        try:
            await self._app(scope, receive, send)
        finally:
            self._tasks.discard(task)
            if not self._tasks:
                self._idle.set()
