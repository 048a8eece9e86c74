"""Serve plugins with the real server inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any

from plugin_di.plugin.definition import PluginsLike
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.plugin.server import PluginServer, serve_async


@contextlib.asynccontextmanager
async def serving(
    plugins: PluginsLike, **kwargs: Any
) -> AsyncIterator[tuple[PluginServer, HandshakeLine, io.StringIO]]:
    """Serve until the block ends; yields the server, its handshake line and its stdout."""
    ready: asyncio.Future[tuple[PluginServer, HandshakeLine]] = (
        asyncio.get_running_loop().create_future()
    )
    stdout = io.StringIO()
    kwargs.setdefault("environ", {})
    kwargs.setdefault("grace_period", 5.0)
    task = asyncio.create_task(
        serve_async(
            plugins,
            stdout=stdout,
            handle_signals=False,
            watch_parent=False,
            on_ready=lambda server, line: ready.set_result((server, line)),
            **kwargs,
        )
    )
    done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        task.cancel()
        raise AssertionError(f"plugin did not become ready: {task.result() if done else 'timeout'}")
    server, line = ready.result()
    try:
        yield server, line, stdout
    finally:
        server.request_stop(None, "test over")
        assert await asyncio.wait_for(task, 10) == 0
