"""A host process for the kill -9 test: an App with two process plugins.

``python -m tests.launch.fx_host`` (from the repository root) starts the app, prints the
plugin pids as one JSON line and waits to be killed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from dependency_injector import containers

from examples.cache.plugin import plugin as cache_plugin
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin, plugin_handles
from plugin_di.launch.process_handle import ProcessHandle

ROOT = str(Path(__file__).resolve().parents[2])


class Host(containers.DeclarativeContainer):
    kv = ProcessPlugin(make_plugin(), module="examples.kv", cwd=ROOT)
    cache = ProcessPlugin(cache_plugin, module="examples.cache", cwd=ROOT)


async def main() -> None:
    app = App(Host, sinks=[])
    await app.start()
    handles = plugin_handles(app.container)
    pids = [h.pid for h in handles.values() if isinstance(h, ProcessHandle)]
    print(json.dumps(pids), flush=True)
    await asyncio.sleep(60)


asyncio.run(main())
