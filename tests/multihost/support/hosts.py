"""In-process hosts on one shared store, for the multi-host tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from plugin_di.host.server import Host
from plugin_di.host.shared.config import StoreConfig
from tests.support.host import ADMISSION


@contextlib.asynccontextmanager
async def hosts_on(store: StoreConfig, count: int = 2, **kwargs: Any) -> AsyncIterator[list[Host]]:
    """``count`` hosts serving on 127.0.0.1:0, all on ``store``."""
    started: list[Host] = []
    admission = kwargs.pop("admission", ADMISSION)
    try:
        for _ in range(count):
            host = Host(store=store, admission=admission, **kwargs)
            await host.start("127.0.0.1:0")
            started.append(host)
        yield started
    finally:
        for host in reversed(started):
            await host.stop()


async def eventually(check: Callable[[], bool | Awaitable[bool]], limit: float = 5.0,
                     what: str = "condition") -> None:  # fmt: skip
    """Wait (bounded) until ``check()`` is true: for changes that travel through the store."""
    async with asyncio.timeout(limit):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(what)  # pragma: no cover
