"""Forward one ASGI lifespan session to many apps (the apps a ``ServiceMux`` holds)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["forward_lifespan"]

log = logging.getLogger(__name__)

_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_App = Callable[[MutableMapping[str, Any], _Receive, _Send], Awaitable[None]]


async def forward_lifespan(
    apps: list[Any], scope: MutableMapping[str, Any], receive: _Receive, send: _Send
) -> None:
    """Run startup on every app, report one result, and the same for shutdown.

    An app that raises instead of answering does not support lifespan and is skipped (ASGI
    spec). If any startup fails, the apps that did start are shut down and the failure is
    reported with every app's message.
    """
    await _Lifespan(apps).run(scope, receive, send)


class _Lifespan:
    """Forward one lifespan session to many apps, each through its own queue."""

    def __init__(self, apps: list[_App]) -> None:
        self._apps = apps

    async def run(self, scope: MutableMapping[str, Any], receive: _Receive, send: _Send) -> None:
        queues: list[asyncio.Queue[_Message]] = [asyncio.Queue() for _ in self._apps]
        replies: asyncio.Queue[tuple[int, _Message]] = asyncio.Queue()
        tasks = [
            asyncio.create_task(self._child(i, app, scope, queues[i], replies))
            for i, app in enumerate(self._apps)
        ]
        live = set(range(len(tasks)))
        try:
            while True:
                message = await receive()
                kind = message["type"]
                for i in live:
                    queues[i].put_nowait(message)
                phase = "startup" if kind == "lifespan.startup" else "shutdown"
                failures = await self._collect(live, replies, phase)
                if failures:
                    await send({"type": f"lifespan.{phase}.failed", "message": "; ".join(failures)})
                    if phase == "startup":
                        await self._shutdown_started(live, queues, replies)
                    return
                await send({"type": f"lifespan.{phase}.complete"})
                if phase == "shutdown":
                    return
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def _child(
        index: int,
        app: _App,
        scope: MutableMapping[str, Any],
        queue: asyncio.Queue[_Message],
        replies: asyncio.Queue[tuple[int, _Message]],
    ) -> None:
        async def send(message: _Message) -> None:
            replies.put_nowait((index, message))

        try:
            await app(dict(scope), queue.get, send)
        except Exception:
            # An app that raises on lifespan does not support it (ASGI spec): skip it.
            log.debug("app %r does not support lifespan", app, exc_info=True)
        replies.put_nowait((index, {"type": "_exited"}))

    @staticmethod
    async def _collect(
        live: set[int], replies: asyncio.Queue[tuple[int, _Message]], phase: str
    ) -> list[str]:
        waiting = set(live)
        failures: list[str] = []
        while waiting:
            index, message = await replies.get()
            kind = message["type"]
            if kind == "_exited":
                live.discard(index)
                waiting.discard(index)
            elif kind == f"lifespan.{phase}.complete":
                waiting.discard(index)
            elif kind == f"lifespan.{phase}.failed":
                waiting.discard(index)
                live.discard(index)
                failures.append(str(message.get("message", "")) or f"{phase} failed")
        return failures

    async def _shutdown_started(
        self,
        live: set[int],
        queues: list[asyncio.Queue[_Message]],
        replies: asyncio.Queue[tuple[int, _Message]],
    ) -> None:
        """After a failed startup, shut down the apps that did start."""
        for i in live:
            queues[i].put_nowait({"type": "lifespan.shutdown"})
        await self._collect(live, replies, "shutdown")
