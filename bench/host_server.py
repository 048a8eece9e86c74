"""A plugin_di Host in its own process for the routed-call benchmark.

Prints the host's base URL on stdout, serves until stdin closes. Rate limiting is off: the
benchmark is one caller making as many calls as it can.
"""

from __future__ import annotations

import asyncio
import sys

from plugin_di.host.admission import AdmissionPolicy, AllowEntry
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host

ADMISSION = AdmissionPolicy(allow=(AllowEntry("kv", frozenset({"kv"})), AllowEntry("app")))
"""The benchmarks' plugins join as ``kv`` (a provider) and ``app`` (a caller)."""


async def main() -> None:
    """Serve a Host on 127.0.0.1 until stdin reaches end of file."""
    host = Host(HostConfig(rate_limit=None), admission=ADMISSION)
    print(await host.start("127.0.0.1:0"), flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await host.stop()


if __name__ == "__main__":
    asyncio.run(main())
