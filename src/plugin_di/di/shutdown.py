"""Shutdowner: lets any part of the app ask ``App.run`` to stop, with an exit code.

class Container(containers.DeclarativeContainer):
    shutdowner = ShutdownerProvider()
    job = providers.Singleton(Job, shutdowner=shutdowner)

class Job:
    def __init__(self, shutdowner: Shutdowner) -> None: ...
    async def finish(self) -> None:
        self.shutdowner.shutdown(exit_code=0)
"""

from __future__ import annotations

import asyncio
import threading

from dependency_injector import providers


class Shutdowner:
    """A one-shot request to stop the app. The first request wins; later ones are ignored."""

    def __init__(self) -> None:
        self._code: int | None = None
        self._reason = ""
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def shutdown(self, exit_code: int = 0, *, reason: str = "shutdown requested") -> None:
        """Ask the app to stop and make ``App.run`` return ``exit_code``. Thread-safe."""
        with self._lock:
            if self._code is not None:
                return
            self._code = int(exit_code)
            self._reason = reason
            loop = self._loop
        if loop is None or loop.is_closed():
            self._event.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._event.set()
        else:
            loop.call_soon_threadsafe(self._event.set)

    @property
    def requested(self) -> bool:
        return self._code is not None

    @property
    def exit_code(self) -> int | None:
        """The requested exit code, or None while no shutdown was requested."""
        return self._code

    @property
    def reason(self) -> str:
        return self._reason

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver requests made from other threads to ``loop`` (the App does this)."""
        with self._lock:
            self._loop = loop

    async def wait(self) -> int:
        """Wait for a shutdown request; return its exit code."""
        self.bind(asyncio.get_running_loop())
        await self._event.wait()
        assert self._code is not None
        return self._code


class ShutdownerProvider(providers.Dependency[Shutdowner]):
    """Declare it in a container to receive the app's `Shutdowner`; the App binds it."""

    def __init__(self) -> None:
        super().__init__(instance_of=Shutdowner)
