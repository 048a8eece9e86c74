"""``plugin-di host``: a standalone host platform for plugins started elsewhere.

The first stdout line is a handshake line in the plugins' format
(``1|1|tcp|127.0.0.1:PORT|connect|``), so a launcher or script can read the
address the same way it reads a plugin's. Runs until SIGINT (exit code 130 after a
clean stop) or SIGTERM (exit code 0).

Admission (docs/security.md#admission): plugins join with a join token signed by
``--admission-key-file``, a client certificate signed by ``--client-ca`` and named by an
``--allow-cert`` entry, or an ``--allow`` entry for their self id. The flags add to the
``PLUGIN_DI_ADMISSION_*`` settings.

``--store redis://HOST:PORT/DB`` (or ``PLUGIN_DI_STORE``) puts the platform's state in
Redis, shared by every host started on it (docs/deploy.md); ``memory://`` is the default.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from plugin_di.plugin.env import CORE_PROTOCOL_VERSION
from plugin_di.plugin.handshake_line import HandshakeLine

if TYPE_CHECKING:
    from plugin_di.host.admission import Admission, AdmissionPolicy
    from plugin_di.host.shared.config import StoreConfig
    from plugin_di.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bind", default="127.0.0.1:0", help="HOST:PORT to listen on (default 127.0.0.1:0)"
    )
    parser.add_argument("--tls-cert", help="PEM certificate: serve TLS (ALPN h2, http/1.1)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--admission-key-file",
        metavar="PATH",
        help="key file that verifies join tokens (make one: plugin-di join-token --new-key)",
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="SELF_ID=TYPE[,TYPE]",
        help="admit plugins with this self_id, without a credential, to provide these types "
        "(for connect-plugin-go plugins; as strong as the network that reaches the host)",
    )
    parser.add_argument(
        "--allow-cert",
        action="append",
        default=[],
        metavar="NAME=TYPE[,TYPE]",
        help="admit a client certificate with this common name (= the plugin's self_id) to "
        "provide these types (needs --client-ca)",
    )
    parser.add_argument(
        "--client-ca",
        metavar="PEM",
        help="CA of the client certificates the host admits (needs --tls-cert/--tls-key)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="where the platform's state lives: memory:// (default: this host alone) or "
        "redis://HOST:PORT/DB (shared by every host started on it); PLUGIN_DI_STORE",
    )
    parser.add_argument(
        "--open-registration",
        action="store_true",
        help="admit anyone to register any service type (development only)",
    )


def admission_policy(args: argparse.Namespace, settings: Settings) -> AdmissionPolicy:
    """The settings' admission policy with the command line's additions."""
    from plugin_di.host.admission import AdmissionPolicy, AllowEntry

    policy = AdmissionPolicy.from_settings(settings)
    return dataclasses.replace(
        policy,
        key_file=Path(args.admission_key_file) if args.admission_key_file else policy.key_file,
        allow=policy.allow + tuple(AllowEntry.parse(a, "--allow") for a in args.allow),
        allow_cert=policy.allow_cert
        + tuple(AllowEntry.parse(a, "--allow-cert") for a in args.allow_cert),
        client_ca=Path(args.client_ca) if args.client_ca else policy.client_ca,
        open_registration=policy.open_registration or args.open_registration,
    )


def _cert_der(path: str) -> bytes:
    pem = Path(path).read_text()
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(pem[start:end])


async def _serve(
    args: argparse.Namespace, settings: Settings, admission: Admission, store: StoreConfig
) -> int:
    from plugin_di.host.server import Host

    host = Host.from_settings(settings, admission=admission, store=store)
    try:
        await host.start(args.bind, certfile=args.tls_cert, keyfile=args.tls_key)
    except OSError as exc:  # a taken port, or a shared store that cannot be reached
        print(f"plugin-di host: {exc}", file=sys.stderr)
        await host.stop()
        return 1
    address = host.url.split("://", 1)[1]
    cert = _cert_der(args.tls_cert) if args.tls_cert else b""
    stop = asyncio.Event()
    received: list[signal.Signals] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    line = HandshakeLine(CORE_PROTOCOL_VERSION, 1, "tcp", address, cert_der=cert)
    print(line.format(), flush=True)
    try:
        await stop.wait()
    finally:
        await host.stop()
        await asyncio.sleep(0.05)  # pyqwest's tokio threads settle before the loop ends
    return 128 + signal.SIGINT if received[0] == signal.SIGINT else 0


def run(args: argparse.Namespace) -> int:
    if bool(args.tls_cert) != bool(args.tls_key):
        print("plugin-di host: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    from plugin_di import eventloop
    from plugin_di.host.admission import Admission
    from plugin_di.host.shared.config import StoreConfig
    from plugin_di.plugin.observed import observed_from_env
    from plugin_di.settings import Settings

    settings = Settings()
    try:
        store = StoreConfig.from_settings(settings, args.store)
        policy = admission_policy(args, settings)
        if policy.client_ca is not None and not args.tls_cert:
            raise ValueError("--client-ca needs the host to serve TLS: add --tls-cert/--tls-key")
        admission = Admission(policy)  # reads the key file: a bad one stops the host here
    except ValueError as exc:  # JoinTokenError too
        print(f"plugin-di host: {exc}", file=sys.stderr)
        return 2
    from plugin_di.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    with observed_from_env(os.environ, "plugin-di-host"):  # PLUGIN_DI_OTEL=1
        return eventloop.run(_serve(args, settings, admission, store), settings.event_loop)
