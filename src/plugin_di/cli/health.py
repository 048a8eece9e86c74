"""Probe a server's health as grpc-health-probe does: exit 0 only when it is SERVING.

Asks grpc.health.v1.Health/Check and, when the server offers it, the plugin's own
connectplugin.health.v1.HealthService/Check about SERVICE ('' or absent: the whole server),
over the Connect protocol (--protocol grpc: gRPC). Plugins (plugin-di and
connect-plugin-go) and hosts answer it, so it serves as a container or systemd health check.

exit codes (those of grpc-health-probe):
  0  the answer is SERVING
  1  invalid arguments
  2  the connection failed or timed out
  3  the RPC failed or timed out (an unknown SERVICE is NOT_FOUND)
  4  the RPC succeeded, but the answer is not SERVING

examples:
  plugin-di health http://127.0.0.1:8080
  plugin-di health 127.0.0.1:8443 kv.v1.KVService --tls --tls-ca ca.pem
  plugin-di health unix:///run/kv.sock --timeout 0.5
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType

from plugin_di.cli._client import (
    CONNECTION_FAILURE,
    INVALID_ARGUMENTS,
    RPC_FAILURE,
    ClientOptions,
    UsageError,
    add_client_arguments,
    code_name,
    is_connection_failure,
)

SERVING = 0
UNHEALTHY = 4

_STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
_PROTOCOLS = {
    "connect": ProtocolType.CONNECT,
    "grpc": ProtocolType.GRPC,
    "grpc-web": ProtocolType.GRPC_WEB,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="http://, https://, unix:// URL or HOST:PORT")
    parser.add_argument(
        "service", metavar="SERVICE", nargs="?", default="", help="service name ('': the server)"
    )
    parser.add_argument(
        "--protocol",
        choices=sorted(_PROTOCOLS),
        default="connect",
        help="the RPC protocol (default connect; grpc for a server that speaks only gRPC)",
    )
    add_client_arguments(parser, timeout=1.0)


@dataclass(frozen=True)
class _Probe:
    label: str
    client: Any
    request: Any


def _probes(
    options: ClientOptions, http: Any, service: str, protocol: ProtocolType
) -> list[_Probe]:
    from plugin_di.gen.connectplugin.health.v1 import health_pb2 as cp_health
    from plugin_di.gen.connectplugin.health.v1.health_connect import HealthServiceClientSync
    from plugin_di.gen.grpc.health.v1 import health_pb2 as grpc_health
    from plugin_di.gen.grpc.health.v1.health_connect import HealthClientSync
    from plugin_di.rpc.transport import connect_client

    def client(cls: Any) -> Any:
        return connect_client(
            cls, options.url, http, timeout_ms=options.timeout_ms, protocol=protocol
        )

    return [
        _Probe(
            "grpc.health.v1",
            client(HealthClientSync),
            grpc_health.HealthCheckRequest(service=service),
        ),
        _Probe(
            "connectplugin.health.v1",
            client(HealthServiceClientSync),
            cp_health.HealthCheckRequest(service=service),
        ),
    ]


def probe(options: ClientOptions, service: str, protocol: str = "connect") -> int:
    """Check both health services; print what each said; the grpc-health-probe exit code."""
    answers: list[tuple[str, int]] = []
    with options.http_client() as http:
        for each in _probes(options, http, service, _PROTOCOLS[protocol]):
            try:
                answer = each.client.check(each.request)
            except ConnectError as exc:
                if is_connection_failure(exc):
                    print(f"failed to connect to {options.url}: {exc.message}", file=sys.stderr)
                    return CONNECTION_FAILURE
                if exc.code == Code.UNIMPLEMENTED:  # a server without this health service
                    continue
                print(
                    f"error: health rpc failed: {each.label}: {code_name(exc.code)}: {exc.message}",
                    file=sys.stderr,
                )
                return RPC_FAILURE
            answers.append((each.label, int(answer.status)))
    if not answers:
        print(
            f"error: {options.url} serves neither grpc.health.v1.Health nor "
            "connectplugin.health.v1.HealthService",
            file=sys.stderr,
        )
        return RPC_FAILURE
    for label, status in answers:
        print(f"{label}: {_STATUS_NAMES.get(status, str(status))}")
    failing = [(label, s) for label, s in answers if s != 1]
    if failing:
        label, status = failing[0]
        name = _STATUS_NAMES.get(status, str(status))
        print(f"service unhealthy ({label} responded with {name})", file=sys.stderr)
        return UNHEALTHY
    print("status: SERVING")
    return SERVING


def run(args: argparse.Namespace) -> int:
    try:
        options = ClientOptions.from_args(args.url, args)
        return probe(options, args.service, args.protocol)
    except UsageError as exc:
        print(f"plugin-di health: {exc}", file=sys.stderr)
        return INVALID_ARGUMENTS
