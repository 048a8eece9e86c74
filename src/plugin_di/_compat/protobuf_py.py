"""protobuf-py's private parts, borrowed by gRPC server reflection.

connectrpc-grpcreflect describes services with protobuf-py descriptors, while plugin-di's
generated code uses google-protobuf. `plugin_di.plugin.reflection` rebuilds each google
``FileDescriptor`` from its serialized ``FileDescriptorProto`` with `file_desc`, the function
protobuf-py's own generated code calls (``protobuf._codegen``; not exported).

The ``protobuf`` module is installed by protobuf-py-pure, which protobuf-py pins exactly.
"""

from __future__ import annotations

from plugin_di._compat import VersionRange, installed_version

TESTED = VersionRange(
    "protobuf-py-pure",
    (0, 7),
    (0, 8),
    borrowed="_codegen.file_desc",
    declared_as="protobuf-py",
)

try:
    from protobuf._codegen import file_desc
except ImportError as exc:  # a version that moved it
    raise ImportError(TESTED.untested(installed_version(TESTED.distribution)) or str(exc)) from exc

TESTED.check_installed()

__all__ = ["TESTED", "file_desc"]
