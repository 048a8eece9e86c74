"""Typed plugin declarations generated from a proto file's services (``<file>_plugin.py``).

connect-plugin-go's protoc-gen-connect-plugin writes the `Plugin` glue for each service so
that users never write it by hand; this is its Python counterpart. For ``kv.v1.KVService``
in ``kv/v1/kv.proto`` it writes ``kv/v1/kv_plugin.py`` beside connectrpc's ``kv_connect.py``::

    plugin = kv_plugin(KVStore())        # mypy checks KVStore against the KVService protocol
    service = kv_service(KVStore())      # one service of a plugin serving several

Each service gets its own names (``<name>_plugin``, ``<name>_service``,
``<NAME>_SERVICE_TYPE``), so several services in one file do not collide.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import FileDescriptorProto

from plugin_di.plugin.definition import default_service_type

SERVICE_FIELD = 6  # FileDescriptorProto.service, for the comments in source_code_info


class DeclarationError(ValueError):
    """Two services of one file would get the same Python names."""


@dataclass(frozen=True)
class ServiceNames:
    """The Python names generated for one service."""

    service: str  # the proto name, also connectrpc's protocol class: KVService
    full_name: str  # kv.v1.KVService
    service_type: str  # the registry type: kv
    stem: str  # the snake-case prefix of the functions: kv
    comment: str  # the service's leading comment in the proto

    @property
    def constant(self) -> str:
        return f"{self.stem.upper()}_SERVICE_TYPE"


def snake_case(name: str) -> str:
    """``KVService`` -> ``kv``, ``UserProfileService`` -> ``user_profile``, ``Logger`` -> same."""
    base = name.removesuffix("Service") or name
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", base).lower()
    return f"{words}_" if keyword.iskeyword(words) else words


def _comments(proto: FileDescriptorProto) -> dict[int, str]:
    found: dict[int, str] = {}
    for location in proto.source_code_info.location:
        path = list(location.path)
        if len(path) == 2 and path[0] == SERVICE_FIELD and location.leading_comments:
            found[path[1]] = " ".join(location.leading_comments.split())
    return found


def service_names(file: FileDescriptor, proto: FileDescriptorProto) -> list[ServiceNames]:
    """The names of each service of ``file``; raises when two would collide."""
    comments = _comments(proto)
    services: list[ServiceDescriptor] = list(file.services_by_name.values())
    names = [
        ServiceNames(
            service=s.name,
            full_name=s.full_name,
            service_type=default_service_type(s),
            stem=snake_case(s.name),
            comment=comments.get(s.index, ""),
        )
        for s in sorted(services, key=lambda s: s.index)
    ]
    stems = [n.stem for n in names]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise DeclarationError(
            f"{file.name}: services {', '.join(n.service for n in names if n.stem in clash)} "
            f"would all be declared as {clash[0]}_plugin: rename one of them"
        )
    return names


def module_name(proto_file: str, suffix: str) -> str:
    """``kv/v1/kv.proto`` -> ``kv_connect`` (the module beside it with that suffix)."""
    return proto_file.rsplit("/", 1)[-1].removesuffix(".proto").replace("-", "_") + suffix


def output_path(proto_file: str) -> str:
    """``kv/v1/kv.proto`` -> ``kv/v1/kv_plugin.py``."""
    folder = proto_file.rsplit("/", 1)[0] + "/" if "/" in proto_file else ""
    return folder + module_name(proto_file, "_plugin") + ".py"


def _declaration(names: ServiceNames) -> str:
    n = names
    summary = f" {n.comment}" if n.comment else ""
    return f'''
{n.constant} = "{n.service_type}"
"""The registry type of {n.full_name} (its name less "Service", in lower case)."""


def {n.stem}_service(
    impl: {n.service} | None = None,
    *,
    type: str = {n.constant},
    version: str = "1.0.0",
) -> Service[{n.service}Client]:
    """{n.full_name} as one service of a plugin.{summary}

    ``impl`` must satisfy the ``{n.service}`` protocol; leave it out where the service
    runs elsewhere (a process in another language, a remote URL) and is only called.
    """
    return Service(
        {n.service}ASGIApplication, {n.service}Client, impl=impl, type=type, version=version
    )


def {n.stem}_plugin(
    impl: {n.service} | None = None,
    *,
    name: str = {n.constant},
    version: str = "1.0.0",
    requires: Sequence[Dependency] = (),
    metadata: Mapping[str, str] | None = None,
) -> Plugin:
    """A plugin named ``name`` serving {n.full_name} alone, implemented by ``impl``."""
    return Plugin(
        name=name,
        version=version,
        services=[{n.stem}_service(impl, version=version)],
        requires=requires,
        metadata=dict(metadata or {{}}),
    )
'''


def render(file: FileDescriptor, proto: FileDescriptorProto) -> str:
    """The declaration module of ``file`` (which has at least one service)."""
    names = service_names(file, proto)
    connect = module_name(file.name, "_connect")
    imported = sorted(
        name
        for n in names
        for name in (n.service, f"{n.service}ASGIApplication", f"{n.service}Client")
    )
    exported = sorted(
        [
            *imported,
            *(
                name
                for n in names
                for name in (n.constant, f"{n.stem}_plugin", f"{n.stem}_service")
            ),
        ]
    )
    lines = [
        f"# Generated by protoc-gen-plugin-di from {file.name}. DO NOT EDIT.",
        f'"""Typed plugin declarations for the services of {file.name}."""',
        "",
        "from __future__ import annotations",
        "",
        "from collections.abc import Mapping, Sequence",
        "",
        "from plugin_di.plugin.definition import Dependency, Plugin, Service",
        "",
        f"from .{connect} import (",
        *(f"    {name}," for name in imported),
        ")",
        "",
        "__all__ = [",
        *(f'    "{name}",' for name in exported),
        "]",
        "",
    ]
    return "\n".join(lines) + "".join("\n" + _declaration(n) for n in names)
