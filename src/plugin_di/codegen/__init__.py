"""Code generation for plugins: the shipped protocol protos, and ``plugin-di proto gen``.

`generate` runs protoc with the generators a Python plugin needs (protobuf messages and
their stubs, connectrpc's services with ``protobuf=google``, and plugin-di's typed
declarations); `proto_path` is where the protocol's own .proto files are installed, for
plugins generated in other languages. Running the generators needs the ``codegen`` extra
(``pip install 'plugin-di[codegen]'``); importing this package does not.
"""

from __future__ import annotations

from plugin_di.codegen.generate import CodegenError, GenerateOptions, generate, rewrite_imports
from plugin_di.codegen.protos import proto_path, shipped_protos

__all__ = [
    "CodegenError",
    "GenerateOptions",
    "generate",
    "proto_path",
    "rewrite_imports",
    "shipped_protos",
]
