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
        # current_task(loop) skips the running-loop lookup (a getpid() syscall on 3.11).
        self._loop: asyncio.AbstractEventLoop | None = None

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

    def tracked(self) -> _Tracked:
        """Count the current task while the ``async with`` block runs (calls served
        outside ASGI, `plugin_di.rpc.fastunary`)."""
        return _Tracked(self)

    def _enter(self) -> asyncio.Task[object]:
        task = asyncio.current_task(self._loop) if self._loop is not None else None
        if task is None:
            self._loop = asyncio.get_running_loop()
            task = asyncio.current_task(self._loop)
            assert task is not None
        if not self._tasks:
            self._idle.clear()
        self._tasks.add(task)
        return task

    def _exit(self, task: asyncio.Task[object]) -> None:
        tasks = self._tasks
        tasks.discard(task)
        if not tasks:
            self._idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        task = self._enter()
        try:
            await self._app(scope, receive, send)
        finally:
            self._exit(task)


class _Tracked:
    """``async with inflight.tracked():`` (a class: cheaper than a generator per call)."""

    __slots__ = ("_inflight", "_task")

    def __init__(self, inflight: InFlight) -> None:
        self._inflight = inflight

    async def __aenter__(self) -> None:
        self._task = self._inflight._enter()

    async def __aexit__(self, *exc: object) -> None:
        self._inflight._exit(self._task)
