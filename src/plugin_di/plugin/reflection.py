"""gRPC server reflection (v1 and v1alpha) for the services a plugin process serves.

connectrpc-grpcreflect describes services with protobuf-py descriptors, while
the generated code here uses google-protobuf. The bridge is the serialized
``FileDescriptorProto`` both share: each google ``FileDescriptor`` is rebuilt
as a protobuf-py ``DescFile`` (dependencies first) with protobuf-py's private ``file_desc``
(borrowed in `plugin_di._compat.protobuf_py`), the function its own generated code uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectrpc.server import ConnectASGIApplication
from connectrpc_grpcreflect import (
    ServerReflectionAlphaASGIApplication,
    ServerReflectionAlphaService,
    ServerReflectionASGIApplication,
    ServerReflectionService,
)
from protobuf import DescFile, DescService

from plugin_di._compat.protobuf_py import file_desc

# google.protobuf ships no type stubs here; descriptors are typed loosely.
FileDescriptor = Any
ServiceDescriptor = Any


# Converted files, kept for the process: a plugin forked from a warm zygote (which
# converted the runtime's own files before forking) does not convert them again.
_CONVERTED: dict[tuple[str, bytes], DescFile] = {}


class _Converter:
    """google ``FileDescriptor`` -> protobuf-py ``DescFile``, each file converted once."""

    def file(self, fd: FileDescriptor) -> DescFile:
        key = (fd.name, fd.serialized_pb)
        found = _CONVERTED.get(key)
        if found is None:
            deps = [self.file(dep) for dep in fd.dependencies]
            found = file_desc(fd.serialized_pb, deps, {})
            _CONVERTED[key] = found
        return found

    def service(self, sd: ServiceDescriptor) -> DescService:
        file = self.file(sd.file)
        for service in file.services:
            if service.type_name == sd.full_name:
                return service
        raise LookupError(f"service {sd.full_name} not found in {sd.file.name}")


def reflection_descriptors(services: Iterable[ServiceDescriptor]) -> list[DescService]:
    """protobuf-py descriptors of the given google service descriptors."""
    converter = _Converter()
    return [converter.service(sd) for sd in services]


def reflection_apps(
    services: Iterable[ServiceDescriptor], **app_kwargs: Any
) -> list[ConnectASGIApplication[Any]]:
    """The v1 and v1alpha reflection ASGI applications listing ``services``.

    ``app_kwargs`` (interceptors, read_max_bytes, ...) go to both applications.
    """
    descs = reflection_descriptors(services)
    return [
        ServerReflectionASGIApplication(ServerReflectionService(*descs), **app_kwargs),
        ServerReflectionAlphaASGIApplication(ServerReflectionAlphaService(*descs), **app_kwargs),
    ]
