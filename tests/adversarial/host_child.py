"""``python -m tests.adversarial.host_child KIND MAX_MESSAGE_BYTES``: a Host in its own process.

Prints the URL of the ``KIND`` listener (``tcp``: the host's url; ``unix``: its local channel
on a Unix socket), then serves until stdin reaches end of file or SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from tests.adversarial.support.servers import ADMISSION


async def main(kind: str, max_message_bytes: int) -> None:
    config = HostConfig(rate_limit=None, max_message_bytes=max_message_bytes)
    host = Host(config, admission=ADMISSION, local_uds=kind == "unix")
    await host.start("127.0.0.1:0")
    print(host.local_url if kind == "unix" else host.url, flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    reader = loop.run_in_executor(None, sys.stdin.read)
    try:
        await asyncio.wait(
            [asyncio.ensure_future(stop.wait()), reader], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        await host.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    sys.exit(0)
