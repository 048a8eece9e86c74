"""The conformance server: ConformanceService served the way plugin-di serves a plugin.

``python -m conformance.server [--loop uvloop|asyncio]`` is the COMMAND of
``connectconformance --mode server``. It reads one length-prefixed ``ServerCompatRequest`` on
stdin, serves a plugin wrapping `ConformanceServer` through ``plugin_di.plugin.server.serve_async``
on 127.0.0.1 port 0 (TLS and client certificates when asked), writes the length-prefixed
``ServerCompatResponse`` on stdout once serving, and serves until SIGTERM.

Client certificates go through automatic mTLS (``PLUGIN_CLIENT_CERT``): the plugin then makes
its own certificate, trusts only the client's, and the response carries the plugin's
certificate. The message limit goes through ``PLUGIN_DI_MAX_MESSAGE_BYTES``.
"""

from __future__ import annotations

import argparse
import faulthandler
import io
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from conformance.gen import server_compat_pb2, service_connect
from conformance.service import ConformanceServer
from conformance.wire import frame, read_frame
from plugin_di import eventloop
from plugin_di.plugin import config as plugin_config
from plugin_di.plugin import env
from plugin_di.plugin.definition import Plugin, Service
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.plugin.runtime import PluginServer
from plugin_di.plugin.server import serve_async
from plugin_di.rpc.tls import der_to_pem

HOST = "127.0.0.1"


LOOPS: dict[str, eventloop.EventLoopKind] = {
    "uvloop": "auto",  # what `plugin-di serve` runs on
    "asyncio": "asyncio",  # what an app's own asyncio.run serves on
}
"""The event loops ``--loop`` selects: the server's transports differ between the two."""


def conformance_plugin() -> Plugin:
    """A plugin whose one service is the ConformanceService."""
    service = Service(
        service_connect.ConformanceServiceASGIApplication,
        service_connect.ConformanceServiceClient,
        impl=ConformanceServer(),
    )
    return Plugin(name="conformance", version="1.0.0", services=[service])


async def serve(request: Any, out: BinaryIO, workdir: Path) -> int:
    """Serve as ``request`` (a ServerCompatRequest) asks until SIGTERM; return the exit code."""
    environ = {plugin_config.SHUTDOWN_GRACE: "0.5"}
    if request.message_receive_limit:
        environ[plugin_config.MAX_MESSAGE_BYTES] = str(request.message_receive_limit)
    cert_file = key_file = None
    if request.use_tls and request.client_tls_cert:
        environ[env.CLIENT_CERT] = request.client_tls_cert.decode("ascii")
    elif request.use_tls:
        cert_file, key_file = workdir / "cert.pem", workdir / "key.pem"
        cert_file.write_bytes(request.server_creds.cert)
        key_file.write_bytes(request.server_creds.key)

    def ready(_server: PluginServer, line: HandshakeLine) -> None:
        host, _, port = line.address.rpartition(":")
        response = server_compat_pb2.ServerCompatResponse(host=host, port=int(port))
        if request.use_tls:
            response.pem_cert = der_to_pem(line.cert_der) if line.cert_der else b""
        out.write(frame(response))
        out.flush()

    return await serve_async(
        [conformance_plugin()],
        bind=f"{HOST}:0",
        tls_cert=cert_file,
        tls_key=key_file,
        environ=environ,
        stdout=io.StringIO(),  # the handshake line; stdout carries the runner's framing
        on_ready=ready,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", choices=sorted(LOOPS), default="uvloop")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>`: every thread's stack on stderr
    data = read_frame(sys.stdin.buffer)
    if data is None:
        print("conformance server: no ServerCompatRequest on stdin", file=sys.stderr)
        return 2
    request = server_compat_pb2.ServerCompatRequest.FromString(data)
    with tempfile.TemporaryDirectory(prefix="conformance-tls-") as workdir:
        return eventloop.run(serve(request, sys.stdout.buffer, Path(workdir)), LOOPS[args.loop])


if __name__ == "__main__":
    raise SystemExit(main())
