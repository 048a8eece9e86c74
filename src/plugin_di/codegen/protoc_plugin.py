"""``protoc-gen-plugin-di``: the protoc plugin that writes the typed plugin declarations.

protoc (or buf) sends a ``CodeGeneratorRequest`` on stdin and reads a
``CodeGeneratorResponse`` from stdout; for each file to generate that has services it
answers ``<file>_plugin.py`` (`plugin_di.codegen.declarations`). It runs beside
protoc-gen-connectrpc (with ``protobuf=google``), whose ``<file>_connect.py`` it imports.
"""

from __future__ import annotations

import sys

from google.protobuf import descriptor_pool
from google.protobuf.compiler import plugin_pb2

from plugin_di.codegen.declarations import DeclarationError, output_path, render


def respond(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """The response to one request: a declaration module per file with services."""
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    pool = descriptor_pool.DescriptorPool()
    for proto in request.proto_file:  # dependencies come before the files that import them
        pool.AddSerializedFile(proto.SerializeToString())
    protos = {proto.name: proto for proto in request.proto_file}
    try:
        for name in request.file_to_generate:
            file = pool.FindFileByName(name)
            if file.services_by_name:
                generated = response.file.add()
                generated.name = output_path(name)
                generated.content = render(file, protos[name])
    except DeclarationError as exc:
        response.error = str(exc)
    return response


def main() -> int:
    """Read the request from stdin, write the response to stdout."""
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(respond(request).SerializeToString())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
