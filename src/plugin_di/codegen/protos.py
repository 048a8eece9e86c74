"""Where the protocol's .proto files are: inside the installed package, or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def proto_path() -> Path:
    """The directory holding the protocol's .proto files, to pass to protoc as ``-I``.

    A wheel carries them as ``plugin_di/proto`` (``pyproject.toml`` force-includes the
    repository's ``proto/`` there); an editable install of a checkout reads ``proto/`` itself.
    """
    for candidate in (_PACKAGE / "proto", _PACKAGE.parent.parent / "proto"):
        if (candidate / "connectplugin" / "v1" / "handshake.proto").is_file():
            return candidate
    raise FileNotFoundError(
        f"the protocol's .proto files are missing from {_PACKAGE / 'proto'}: "
        "reinstall plugin-di from its wheel or sdist"
    )


def shipped_protos() -> list[str]:
    """Every shipped .proto file, relative to `proto_path` (``grpc/health/v1/health.proto``)."""
    root = proto_path()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.proto"))
