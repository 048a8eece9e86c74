"""The one parse of a routed path: ``/services/{type}/{provider_id}/[{Service}/]{Method}``.

Every route the host has (the ASGI router, the short path and the splice
behind it) reads the path here, once, from the bytes the caller sent (ASGI ``raw_path``,
or the request line), and forwards only what the parse produced: ``/{Service}/{Method}``
built from checked identifiers. Nothing below can resolve the path into another one:

- the path must start with ``/services/`` as sent (not after percent-decoding);
- any ``%`` is refused (so no encoded dots or slashes), and so are ``.``/``..`` and
  empty segments, bytes outside ASCII, and segments that are not what their place needs;
- after the provider id come one or two segments: connect-plugin-go's ``{Method}``, or
  ``{package.Service}/{Method}``.

A malformed path is INVALID_ARGUMENT. Whether the service and method are the registered
ones is `upstream_path`'s question, asked once the provider's registration is known: the
service must be the one its endpoint path names (else UNIMPLEMENTED), the method one of
that service's methods when the google-protobuf descriptor pool knows it (else
UNIMPLEMENTED, as a server answers an unknown method), and the plugin control plane
(`CONTROL_PLANE`) is never routed (PERMISSION_DENIED), whatever a registration says.
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.rpc.asgi import Scope

__all__ = [
    "CONTROL_PLANE",
    "SERVICES_PREFIX",
    "RouteTarget",
    "checked_query",
    "parse_route_path",
    "raw_path_of",
    "service_methods",
    "upstream_path",
]

SERVICES_PREFIX = "/services/"
_PREFIX = SERVICES_PREFIX.encode()
MAX_ROUTE_PATH_BYTES = 1024

CONTROL_PLANE = frozenset(
    {
        "connectplugin.v1.PluginControl",
        "connectplugin.v1.PluginIdentity",
        "connectplugin.v1.HandshakeService",
    }
)
"""Services a plugin serves for its host only: never reachable through the router."""

_SERVICE_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,127}")
_PROVIDER_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")
_SERVICE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_METHOD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUERY = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
_SHAPE = "expected /services/{type}/{provider_id}/{Method} or .../{package.Service}/{Method}"


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """A parsed routed path. ``service`` is empty when the path named only the method."""

    service_type: str
    provider: str
    service: str
    method: str


def raw_path_of(scope: Scope) -> bytes:
    """The path as the caller sent it: ASGI ``raw_path``, else ``path`` (as UTF-8)."""
    raw = scope.get("raw_path")
    if raw:
        return bytes(raw)
    path: str = scope.get("path", "")
    return path.encode("utf-8", "surrogateescape")


def checked_query(query: bytes) -> str:
    """A query string to forward as it is: only the characters RFC 3986 allows there."""
    if _QUERY.fullmatch(query) is None:
        raise _malformed("the query string has characters a URL may not carry")
    return query.decode("ascii")


def _malformed(why: str) -> ConnectError:
    return ConnectError(Code.INVALID_ARGUMENT, f"invalid routed path: {why}")


def parse_route_path(raw: bytes) -> RouteTarget:
    """Parse a routed path as sent; raise INVALID_ARGUMENT saying what is wrong with it."""
    if not raw.startswith(_PREFIX):
        raise _malformed(f"it must start with {SERVICES_PREFIX!r} as sent; {_SHAPE}")
    if len(raw) > MAX_ROUTE_PATH_BYTES:
        raise _malformed(f"longer than {MAX_ROUTE_PATH_BYTES} bytes")
    if b"%" in raw:
        raise _malformed("percent-encoding is not allowed")
    if not raw.isascii():
        raise _malformed("only ASCII is allowed")
    parts = raw[len(_PREFIX) :].decode("ascii").split("/")
    if len(parts) not in (3, 4):
        raise _malformed(f"{len(parts)} segments after /services/; {_SHAPE}")
    for part in parts:
        if part in ("", ".", ".."):
            raise _malformed("empty, '.' and '..' segments are not allowed")
    service_type, provider = parts[0], parts[1]
    service, method = (parts[2], parts[3]) if len(parts) == 4 else ("", parts[2])
    if _SERVICE_TYPE.fullmatch(service_type) is None or ".." in service_type:
        raise _malformed("the service type is not a valid service type name")
    if _PROVIDER_ID.fullmatch(provider) is None:
        raise _malformed("the provider id is not a valid runtime id")
    if service and _SERVICE.fullmatch(service) is None:
        raise _malformed("the service is not a fully qualified service name")
    if _METHOD.fullmatch(method) is None:
        raise _malformed("the method is not a method name")
    return RouteTarget(service_type, provider, service, method)


@functools.lru_cache(maxsize=256)
def service_methods(service: str) -> frozenset[str] | None:
    """The methods of ``service`` from the google-protobuf descriptor pool (None: unknown)."""
    try:
        # Imported by name: google-protobuf ships no type stubs.
        pool = importlib.import_module("google.protobuf.descriptor_pool").Default()
        descriptor = pool.FindServiceByName(service)
    except (ImportError, KeyError):
        return None
    return frozenset(method.name for method in descriptor.methods)


@functools.lru_cache(maxsize=1024)
def _registered_service(endpoint_path: str) -> str | None:
    name = endpoint_path.strip("/")
    return name if _SERVICE.fullmatch(name) is not None else None


def upstream_path(target: RouteTarget, endpoint_path: str, provider: str) -> str:
    """``/{Service}/{Method}`` on the provider, for a target routed to a registration with
    ``endpoint_path``; raise UNIMPLEMENTED, PERMISSION_DENIED or NOT_FOUND when the target
    is not exactly a method of the service registered."""
    service = _registered_service(endpoint_path)
    if service is None:
        raise ConnectError(
            Code.NOT_FOUND,
            f"provider {provider!r} registered endpoint path {endpoint_path!r}, which names no "
            "single service: it cannot be routed; register '/package.Service/'",
        )
    if service in CONTROL_PLANE:
        raise ConnectError(
            Code.PERMISSION_DENIED, f"{service} is the plugin's control plane: never routed"
        )
    if target.service and target.service != service:
        raise ConnectError(
            Code.UNIMPLEMENTED,
            f"provider {provider!r} is routed for {service}, not {target.service}",
        )
    methods = service_methods(service)
    if methods is not None and target.method not in methods:
        raise ConnectError(Code.UNIMPLEMENTED, f"{service} has no method {target.method!r}")
    return f"/{service}/{target.method}"
