"""The conformance suite's generated modules, generated into the cache on first import."""

from conformance.protos import ensure_importable

ensure_importable()

from conformance_gen.connectrpc.conformance.v1 import (  # noqa: E402
    client_compat_pb2,
    config_pb2,
    server_compat_pb2,
    service_connect,
    service_pb2,
)

__all__ = ["client_compat_pb2", "config_pb2", "server_compat_pb2", "service_connect", "service_pb2"]
