"""Issue 17: ``ps`` tells which process is which plugin.

A plugin forked from the app's zygote would show the zygote's command line
(``python -m plugin_di.launch.zygote._main ...``); it shows its own title instead, read
here from ``/proc/PID/cmdline`` as ``ps`` reads it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from dependency_injector import containers

from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin, app_zygote
from plugin_di.launch.zygote import _main as zygote_main
from plugin_di.plugin import env as plugin_env
from tests.support.pids import wait_gone
from tests.support.processes import ROOT


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


async def test_forked_plugins_and_their_zygote_are_named_in_ps() -> None:
    container = containers.DynamicContainer()
    container.kv = ProcessPlugin(make_plugin(), module="examples.kv", cwd=str(ROOT))
    app = App(container, name="titles")
    await asyncio.wait_for(app.start(), 60)
    try:
        shared = app_zygote(app)
        assert shared is not None
        assert shared.zygote is not None
        pids = [container.kv().pid, shared.zygote.pid]
        assert cmdline(pids[0]) == "plugin-di: plugin kv (examples.kv)"
        assert cmdline(pids[1]) == "plugin-di: zygote"
    finally:
        await asyncio.wait_for(app.stop(), 60)
    assert wait_gone(pids, 10) == []


def test_the_zygote_reads_the_plugin_name_where_the_launcher_puts_it() -> None:
    assert zygote_main.PLUGIN_NAME_ENV == plugin_env.PLUGIN_NAME
