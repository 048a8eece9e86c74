"""Run an ASGI app's lifespan: startup before serving, shutdown after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import MutableMapping
from typing import Any

from plugin_di.rpc.asgi import ASGIApp

__all__ = ["Lifespan", "StartupFailed"]

log = logging.getLogger("plugin_di.rpc.serving")

SHUTDOWN_SECONDS = 5.0


class StartupFailed(RuntimeError):
    """The app's lifespan startup failed, so nothing was served."""


class Lifespan:
    """One lifespan session of ``app``. An app that raises before answering startup does not
    speak lifespan (ASGI spec): serving goes on without it."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Run startup; raise `StartupFailed` when the app reports a failure."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._inbox.put_nowait({"type": "lifespan.startup"})
        answer = await self._answer()
        if answer is None:
            return
        if answer["type"] == "lifespan.startup.failed":
            message = str(answer.get("message", "")) or "no reason given"
            raise StartupFailed(f"the app's lifespan startup failed: {message}")

    async def shutdown(self) -> None:
        """Run shutdown (bounded by `SHUTDOWN_SECONDS`); a failure is logged, not raised."""
        task = self._task
        if task is None or task.done():
            return
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        try:
            async with asyncio.timeout(SHUTDOWN_SECONDS):
                answer = await self._answer()
        except TimeoutError:
            log.warning("the app's lifespan shutdown took over %.1fs; cancelled", SHUTDOWN_SECONDS)
            answer = None
        if answer is not None and answer["type"] == "lifespan.shutdown.failed":
            log.error("the app's lifespan shutdown failed: %s", answer.get("message", ""))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _answer(self) -> dict[str, Any] | None:
        """The app's next lifespan message, or None when it ended without one."""
        assert self._task is not None
        getter = asyncio.ensure_future(self._answers.get())
        await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        return None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}

        async def send(message: MutableMapping[str, Any]) -> None:
            self._answers.put_nowait(dict(message))

        try:
            await self._app(scope, self._inbox.get, send)
        except Exception:
            log.debug("the app does not speak lifespan", exc_info=True)
