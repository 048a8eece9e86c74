"""``plugin-di health --protocol grpc`` against a grpcio server (gRPC only, no Connect)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest

from plugin_di.cli import main
from plugin_di.gen.grpc.health.v1 import health_pb2

grpc = pytest.importorskip("grpc")


@pytest.fixture
def grpcio_server() -> Iterator[tuple[str, dict[str, int]]]:
    """grpcio serving grpc.health.v1.Health/Check from a dict of statuses."""
    statuses = {"": health_pb2.HealthCheckResponse.SERVING}

    def check(request: health_pb2.HealthCheckRequest, context: Any) -> Any:
        if request.service not in statuses:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=statuses[request.service])

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", statuses
    finally:
        server.stop(grace=None).wait(5)


def test_health_probes_a_grpc_only_server(
    grpcio_server: tuple[str, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    address, statuses = grpcio_server
    assert main(["health", address, "--protocol", "grpc"]) == 0
    assert capsys.readouterr().out == "grpc.health.v1: SERVING\nstatus: SERVING\n"
    statuses[""] = health_pb2.HealthCheckResponse.NOT_SERVING
    assert main(["health", address, "--protocol", "grpc"]) == 4
    assert main(["health", address, "db", "--protocol", "grpc"]) == 3
    assert "not_found: unknown service" in capsys.readouterr().err
