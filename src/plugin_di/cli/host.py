"""``plugin-di host``: a standalone host platform for plugins started elsewhere.

The first stdout line is a handshake line in the plugins' format
(``1|1|tcp|127.0.0.1:PORT|connect|``), so a launcher or script can read the
address the same way it reads a plugin's. Runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from pathlib import Path

from plugin_di.plugin.env import CORE_PROTOCOL_VERSION
from plugin_di.plugin.handshake_line import HandshakeLine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bind", default="127.0.0.1:0", help="HOST:PORT to listen on (default 127.0.0.1:0)"
    )
    parser.add_argument("--tls-cert", help="PEM certificate: serve TLS (ALPN h2, http/1.1)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--open-registration",
        action="store_true",
        help="let plugins that declared nothing register any service type (development only)",
    )


def _cert_der(path: str) -> bytes:
    pem = Path(path).read_text()
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(pem[start:end])


async def _serve(args: argparse.Namespace) -> int:
    from plugin_di.host.server import Host

    host = Host.from_settings(open_registration=args.open_registration)
    try:
        await host.start(args.bind, certfile=args.tls_cert, keyfile=args.tls_key)
    except OSError as exc:
        print(f"plugin-di host: {exc}", file=sys.stderr)
        return 1
    address = host.url.split("://", 1)[1]
    cert = _cert_der(args.tls_cert) if args.tls_cert else b""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    line = HandshakeLine(CORE_PROTOCOL_VERSION, 1, "tcp", address, cert_der=cert)
    print(line.format(), flush=True)
    try:
        await stop.wait()
    finally:
        await host.stop()
        await asyncio.sleep(0.05)  # pyqwest's tokio threads settle before the loop ends
    return 0


def run(args: argparse.Namespace) -> int:
    if bool(args.tls_cert) != bool(args.tls_key):
        print("plugin-di host: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    from plugin_di import eventloop
    from plugin_di.settings import Settings

    return eventloop.run(_serve(args), Settings().event_loop)
