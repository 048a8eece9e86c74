"""An in-process hook that raises, and process plugins that fail at import and at start."""

from __future__ import annotations

from dependency_injector import containers, providers

from examples.kv.plugin import make_plugin
from plugin_di.di.providers import ProcessPlugin


class Database:
    async def start(self) -> None:
        raise RuntimeError("database refused the connection")

    async def stop(self) -> None:
        pass


class HookRaises(containers.DeclarativeContainer):
    db = providers.Singleton(Database)


class PluginImportFails(containers.DeclarativeContainer):
    kv = ProcessPlugin(make_plugin(), module="tests.cli.failing.plugin_import")


class PluginStartFails(containers.DeclarativeContainer):
    kv = ProcessPlugin(make_plugin(), module="tests.cli.failing.plugin_start")


class Settings:
    def __init__(self) -> None:
        raise KeyError("DATABASE_URL")


class BuildFails(containers.DeclarativeContainer):
    settings = providers.Singleton(Settings)


class PluginImports(containers.DeclarativeContainer):
    kv = ProcessPlugin(make_plugin(), module="examples.kv")


class PluginHangs(containers.DeclarativeContainer):
    kv = ProcessPlugin(make_plugin(), module="tests.cli.failing.plugin_hangs")


class Cache:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        raise OSError("cache flush failed")


class StopRaises(containers.DeclarativeContainer):
    cache = providers.Singleton(Cache)
