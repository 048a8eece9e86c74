"""The KV plugin's whole ASGI app (`app`), served by one of the servers `bench.servers` compares.

``app`` is what ``plugin-di serve examples.kv.plugin:plugin`` serves: the KV service next to
the runtime's handshake, health, identity, control and reflection services, in one
`ServiceMux`. ``granian`` and ``pyvoy`` load it by its ``module:attr`` name; pyvoy runs it
inside Envoy's process.

``python -m bench.serve_app KIND PORT`` serves it with KIND (``uvicorn``, ``hypercorn`` or
``plugin-di-asgi``: plugin-di's server without the short path) on ``127.0.0.1:PORT`` (0: any),
or starts ``pyvoy`` with it; prints ``PORT <port>`` once serving, and serves until stdin
closes. The servers are set up as `docs/performance.md` and the earlier measurements
(``../shared/reference/servers.md``) describe: uvloop, no access log, HTTP/2 keep-alive not
capped.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from examples.kv.plugin import make_plugin
from plugin_di.plugin.runtime import PluginServer

app = PluginServer(make_plugin()).app


async def _until_stdin_closes() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _ready(port: int) -> None:
    print(f"PORT {port}", flush=True)


async def _uvicorn(port: int) -> None:
    import uvicorn

    from plugin_di.rpc.serving import bind_socket

    bound = bind_socket(f"127.0.0.1:{port}")
    config = uvicorn.Config(
        app,
        loop="none",
        http="httptools",
        ws="none",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=300,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[bound.sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
        await asyncio.sleep(0.01)
    _ready(int(bound.sock.getsockname()[1]))
    await _until_stdin_closes()
    server.should_exit = True
    await serving


async def _hypercorn(port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from plugin_di.rpc.serving import bind_socket

    bound = bind_socket(f"127.0.0.1:{port}")
    config = Config()
    config.bind = [f"fd://{bound.sock.fileno()}"]
    config.keep_alive_max_requests = 10**9
    config.accesslog = None
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    await asyncio.sleep(0.2)  # hypercorn has no started flag: the socket listens already
    _ready(int(bound.sock.getsockname()[1]))
    await _until_stdin_closes()
    stop.set()
    await serving


async def _plugin_di_asgi(port: int) -> None:
    from plugin_di.rpc.serving import Server, bind_socket

    bound = bind_socket(f"127.0.0.1:{port}")
    server = Server(app, bound)  # no short paths: every request through an ASGI cycle
    await server.start()
    _ready(int(bound.sock.getsockname()[1]))
    await _until_stdin_closes()
    await server.stop()


async def _pyvoy(port: int) -> None:
    from pyvoy import PyvoyServer

    server: Any = PyvoyServer("bench.serve_app:app", address="127.0.0.1", port=port)
    async with server:
        _ready(server.listener_port)
        await _until_stdin_closes()


KINDS = {
    "uvicorn": _uvicorn,
    "hypercorn": _hypercorn,
    "plugin-di-asgi": _plugin_di_asgi,
    "pyvoy": _pyvoy,
}


if __name__ == "__main__":
    import uvloop

    kind, port_text = sys.argv[1], sys.argv[2]
    uvloop.run(KINDS[kind](int(port_text)))
