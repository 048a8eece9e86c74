"""``python -m bench.h1_cpu``: CPU per request of the HTTP/1.1 server and its short path.

No sockets and no client: an `H1Connection` of plugin-di's server, fed the bytes the Go
peer's client sends for a KV ``Get`` (captured from the wire), answers through a transport
that only keeps the last write, on uvloop. CPU time (``time.process_time``) per request, so a
busy machine disturbs it far less than a client-server run; compare versions with it (two
checkouts, alternating runs), not machines. The figure includes two loop turns per request
(~5 µs) that let the answer's task run.

``--new-connections`` opens a connection for every request (the Go client at 32 in flight
opens one for about one call in twenty).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.plugin import make_plugin
from plugin_di.clock import SYSTEM_CLOCK
from plugin_di.plugin.runtime import PluginServer
from plugin_di.rpc.serving._h1 import H1Connection
from plugin_di.rpc.serving._hub import Hub, Requests
from plugin_di.rpc.serving.config import Limits
from plugin_di.rpc.unary_shortpath import UnaryShortPaths


def _request(method: str, body: bytes) -> bytes:
    return (
        b"POST /kv.v1.KVService/%s HTTP/1.1\r\nHost: 127.0.0.1:45711\r\n"
        b"User-Agent: connect-go/1.18.1 (go1.27.3)\r\nContent-Length: %d\r\n"
        b"Accept-Encoding: gzip\r\nConnect-Protocol-Version: 1\r\n"
        b"Content-Type: application/proto\r\n\r\n%s" % (method.encode(), len(body), body)
    )


GET = _request("Get", pb.GetRequest(key="k").SerializeToString())
PUT = _request("Put", pb.PutRequest(key="k", value=b"v" * 16).SerializeToString())


class _Transport:
    """Keeps the last write; everything else a connection asks of a transport does nothing."""

    last = b""

    def write(self, data: bytes) -> None:
        self.last = data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 6666)}.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _connect(hub: Hub) -> tuple[H1Connection, _Transport]:
    transport = _Transport()
    connection = H1Connection(hub)
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport


async def measure(requests: int, rounds: int, new_connections: bool) -> list[float]:
    """µs of CPU per request, one figure per round."""
    server = PluginServer(make_plugin())
    short = UnaryShortPaths(server._connect_apps, max_message_bytes=server._max_message_bytes)
    hub = Hub(server.app, Limits(), SYSTEM_CLOCK, Requests(), short_paths=short)
    connection, transport = _connect(hub)
    connection.data_received(PUT)
    for _ in range(3):
        await asyncio.sleep(0)
    figures = []
    for _ in range(rounds):
        gc.collect()
        start = time.process_time()
        for _ in range(requests):
            if new_connections:
                connection.connection_lost(None)
                connection, transport = _connect(hub)
            connection.data_received(GET)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        figures.append((time.process_time() - start) / requests * 1e6)
        if not transport.last.startswith(b"HTTP/1.1 200 OK"):
            raise RuntimeError(f"unexpected answer: {transport.last[:200]!r}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=10_000, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--new-connections", action="store_true")
    args = parser.parse_args(argv)
    import uvloop

    figures = uvloop.run(measure(args.requests, args.rounds, args.new_connections))
    print(" ".join(f"{f:.1f}" for f in figures), f"µs per request (best {min(figures):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
