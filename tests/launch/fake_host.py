"""A host process for parent-death tests: ``python fake_host.py MODE COUNT [raw]``.

Launches COUNT fake plugins (through PluginProcess, or with plain Popen and no
parent pipe when ``raw`` is given), prints their pids as one JSON line, then
waits to be killed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from plugin_di.launch.process import LaunchConfig, PluginProcess

FAKE = __file__.replace("fake_host.py", "fake_plugin.py")


async def main(mode: str, count: int, raw: bool) -> None:
    pids: list[int] = []
    for i in range(count):
        command = [sys.executable, FAKE, mode]
        if raw:
            child = subprocess.Popen(command, stdout=subprocess.PIPE)  # noqa: ASYNC220
            assert child.stdout is not None
            child.stdout.readline()
            pids.append(child.pid)
        else:
            proc = PluginProcess(LaunchConfig(name=f"p{i}", command=command))
            await proc.start()
            pids.append(proc.pid or 0)
    print(json.dumps(pids), flush=True)
    await asyncio.sleep(60)


asyncio.run(main(sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3))
