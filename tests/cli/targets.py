"""MODULE:ATTR targets for the CLI tests (run from the repository root)."""

from __future__ import annotations

import asyncio
import sys

from dependency_injector import containers, providers

from plugin_di.di.app import App
from plugin_di.settings import Settings


class Server:
    def __init__(self, name: str, *deps: object) -> None:
        self.name = name

    async def start(self) -> None:
        await asyncio.sleep(0)
        print(f"{self.name}: started", file=sys.stderr, flush=True)

    async def stop(self) -> None:
        await asyncio.sleep(0)
        print(f"{self.name}: stopped", file=sys.stderr, flush=True)


class Broken(Server):
    async def start(self) -> None:
        raise RuntimeError("port 8080 is taken")


class Serving(containers.DeclarativeContainer):
    db = providers.Singleton(Server, "db")
    api = providers.Singleton(Server, "api", db)


class FailsToStart(containers.DeclarativeContainer):
    db = providers.Singleton(Server, "db")
    api = providers.Singleton(Broken, "api", db)


class Cycle(containers.DeclarativeContainer):
    a = providers.Singleton(dict)
    b = providers.Singleton(dict, a=a)


Cycle.a.add_kwargs(b=Cycle.b)


class MissingDep(containers.DeclarativeContainer):
    url = providers.Dependency(instance_of=str)
    db = providers.Singleton(Server, url)


serving_instance = Serving()
serving_app = App(Serving, settings=Settings(log_level="INFO"))
not_a_container = 42
