"""Services and helpers shared by the lifecycle engine tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from plugin_di.di.events import Event
from plugin_di.settings import Settings


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"start_timeout": 10, "stop_timeout": 10, "hook_timeout": 10}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class Log:
    """Records ("start"|"stop", name) in the order hooks ran."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    def add(self, phase: str, name: str) -> None:
        self.entries.append((phase, name))

    def phase(self, phase: str) -> list[str]:
        return [name for p, name in self.entries if p == phase]

    def count(self, phase: str, name: str) -> int:
        return self.entries.count((phase, name))


class AsyncService:
    """async start/stop that yield to the loop, so concurrency shows."""

    def __init__(self, name: str, log: Log, *deps: object) -> None:
        self.name = name
        self.log = log
        self.deps = deps

    async def start(self) -> None:
        await asyncio.sleep(0)
        self.log.add("start", self.name)

    async def stop(self) -> None:
        await asyncio.sleep(0)
        self.log.add("stop", self.name)


class SyncService:
    def __init__(self, name: str, log: Log, *deps: object) -> None:
        self.name = name
        self.log = log
        self.deps = deps

    def start(self) -> None:
        self.log.add("start", self.name)

    def stop(self) -> None:
        self.log.add("stop", self.name)


class FailingStart(AsyncService):
    async def start(self) -> None:
        await asyncio.sleep(0)
        raise RuntimeError(f"{self.name} cannot start")


class FailingStop(AsyncService):
    async def stop(self) -> None:
        await asyncio.sleep(0)
        self.log.add("stop", self.name)
        raise ValueError(f"{self.name} cannot stop")


class Blocking(AsyncService):
    """start blocks until released; records that it began."""

    def __init__(self, name: str, log: Log, *deps: object) -> None:
        super().__init__(name, log, *deps)
        self.began = asyncio.Event()
        self.release = asyncio.Event()

    async def start(self) -> None:
        self.began.set()
        await self.release.wait()
        self.log.add("start", self.name)


class Stubborn(Blocking):
    """Ignores cancellation until released."""

    async def start(self) -> None:
        self.began.set()
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.log.add("ignored-cancel", self.name)
        self.log.add("start", self.name)


class Events:
    """A sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def names(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


async def until(condition: Callable[[], bool], turns: int = 2000) -> None:
    """Let the loop run until ``condition`` holds (never sleeps real time)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")
