"""Serve an in-memory plugin on loopback so child-process plugins can call it.

Until the host platform runs in this example (then the cache finds the logger
through the registry), this is how the cache process reaches the in-memory
logger: the bridge serves the very same implementation object on
127.0.0.1:<free port>, and the cache gets the URL as ``PLUGIN_DI_HOST_URL``.
The socket is bound when the bridge is built, so the URL is known before
anything starts; it accepts calls from its start hook on.
"""

from __future__ import annotations

import asyncio
import contextlib

from plugin_di.launch.inmemory import InMemoryHandle
from plugin_di.plugin.server import PluginServer
from plugin_di.rpc.hypercorn import bind_socket


class PluginBridge:
    """An in-memory plugin, also served over h2c for child processes."""

    def __init__(self, plugin: InMemoryHandle) -> None:
        self.plugin = plugin
        self._bound = bind_socket("127.0.0.1:0")
        self._server = PluginServer(plugin.plugin, reflection=False, grace_period=1.0)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self._bound.url

    async def start(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._server.run(self._bound, ready=ready.set))
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiter.cancel()
            self._task.result()  # raises why it could not serve

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.request_stop(0.5, "application stopping")
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
