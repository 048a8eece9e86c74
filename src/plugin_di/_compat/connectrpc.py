"""connectrpc's private parts, borrowed by the short paths and direct dispatch.

connectrpc (0.13) keeps the pieces of its ASGI app private: the request and error encoding of
the Connect protocol, the resolved endpoint table with its interceptors applied, the leading
metadata interceptors, the codecs and compressions. The unary short path
(`plugin_di.rpc.unary_shortpath`) and direct dispatch (`plugin_di.plugin.direct`) run those same
objects instead of copying them; the mux (`plugin_di.rpc.asgi`, `plugin_di.rpc.quiet_codecs`)
adjusts two of them in place.

Attributes read per call stay inline where they are read, named in `HOT_PATH_ATTRIBUTES`
(a function call each would cost more than the read): tests/compat checks they exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectrpc.request import Headers

from plugin_di._compat import VersionRange, installed_version

TESTED = VersionRange(
    "connectrpc",
    (0, 13),
    (0, 14),
    borrowed=(
        "the server protocol, endpoints, interceptor runs, response metadata, app fields, "
        "client fields"
    ),
)

try:
    # What a Connect unary call runs between the HTTP body and the implementation.
    from connectrpc._interceptor_async import MetadataInterceptorsRun
    from connectrpc._protocol import ConnectWireError, HTTPError
    from connectrpc._protocol_connect import ConnectClientProtocol, ConnectServerProtocol

    # The client's ResponseMetadata is filled by these (direct dispatch has no HTTP response).
    from connectrpc._response_metadata import (
        _current_response,
        handle_response_headers,
        handle_response_trailers,
    )

    # The endpoint kinds in a generated app's table (the public `Endpoint` is their base).
    from connectrpc._server_shared import (
        EndpointBidiStream,
        EndpointClientStream,
        EndpointServerStream,
        EndpointUnary,
    )
    from connectrpc._shared import decode_message
except ImportError as exc:  # a version that moved them
    raise ImportError(TESTED.untested(installed_version(TESTED.distribution)) or str(exc)) from exc
TESTED.check_installed()

__all__ = [
    "HOT_PATH_ATTRIBUTES",
    "TESTED",
    "ClientFields",
    "ConnectServerProtocol",
    "ConnectWireError",
    "EndpointBidiStream",
    "EndpointClientStream",
    "EndpointServerStream",
    "EndpointUnary",
    "HTTPError",
    "MetadataInterceptorsRun",
    "app_codecs",
    "app_compressions",
    "app_endpoints",
    "app_metadata_interceptors",
    "app_service",
    "client_fields",
    "decode_message",
    "handle_response_headers",
    "handle_response_trailers",
    "header_value",
    "replace_app_codecs",
    "replace_app_compressions",
    "request_headers",
    "response_metadata_wanted",
    "set_app_read_max_bytes",
]

HOT_PATH_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    # unary_shortpath reads these per call: no deadline and no response metadata set skip work.
    "connectrpc.request.RequestContext": ("_end_time", "_response_headers", "_response_trailers"),
    # request_headers and header_value (below) build and read the store directly.
    "connectrpc.request.Headers": ("_store", "_extra"),
}
"""Private attributes read inline on hot paths, by the class that owns them."""


# A generated ``XxxServiceASGIApplication`` (a ``ConnectASGIApplication``).


def app_service(app: object) -> Any:
    """The service implementation an app was built with (None when it has none: not
    connectrpc's app; an async generator when it is created in lifespan)."""
    return getattr(app, "_service", None)


def app_endpoints(app: Any, service: Any) -> Mapping[str, Any]:
    """The app's endpoints by path (``/pkg.Service/Method``), its interceptors applied."""
    endpoints: Mapping[str, Any] = app._resolve_endpoints(service)
    return endpoints


def app_metadata_interceptors(app: Any) -> tuple[Any, ...]:
    """The leading metadata interceptors, which run before the body is read."""
    return tuple(app._metadata_interceptors)


def app_codecs(app: object) -> dict[str, Any] | None:
    """The app's codecs by name ("proto", "json"), or None when it has none."""
    codecs = getattr(app, "_codecs", None)
    return codecs if isinstance(codecs, dict) else None


def replace_app_codecs(app: object, codecs: dict[str, Any]) -> None:
    """Give the app other codecs (it reads the table on every request)."""
    app._codecs = codecs  # type: ignore[attr-defined]


def app_compressions(app: object) -> dict[str, Any] | None:
    """The app's compressions by name, or None (connectrpc shares one dict between apps)."""
    compressions = getattr(app, "_compressions", None)
    return compressions if isinstance(compressions, dict) else None


def replace_app_compressions(app: object, compressions: dict[str, Any]) -> None:
    """Give the app other compressions (a new dict: never mutate the shared default)."""
    app._compressions = compressions  # type: ignore[attr-defined]


def set_app_read_max_bytes(app: object, max_bytes: int) -> None:
    """Set the request size limit the app reads on every request (if it has one)."""
    if hasattr(app, "_read_max_bytes"):
        app._read_max_bytes = max_bytes


# connectrpc's `Headers`: a lower-cased ``_store`` dict, repeated values in ``_extra``.


class _RequestHeaders(Headers):
    """connectrpc's `Headers`, with a ``get`` that skips the generic mapping protocol."""

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key.lower(), default)


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Raw request headers (names lower-cased) as connectrpc's `Headers`, decoded as UTF-8 as
    connectrpc's ASGI app does: the same bytes are refused (UnicodeDecodeError) on both paths."""
    headers = _RequestHeaders.__new__(_RequestHeaders)  # Headers() costs an ABC check
    headers._extra = None
    headers._store = store = {}
    for name, value in raw:
        key = name.decode()
        if key in store:
            headers.add(key, value.decode())  # a repeated header keeps every value
        else:
            store[key] = value.decode()
    return headers


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of a header (``name`` lower-case), read from the store directly: the
    public lookup costs two more Python calls per header."""
    store = getattr(headers, "_store", None)
    if type(store) is dict:
        value: str | None = store.get(name)
        return value
    return headers.get(name)


# A generated ``XxxClient`` (a ``ConnectClient``): what it was built with, read once.


@dataclass(frozen=True, slots=True)
class ClientFields:
    """The settings a ``ConnectClient`` sends unary calls with (`client_fields`)."""

    address: str
    codec: Any
    protocol: Any
    """its protocol object: ``create_request_context``, ``validate_response``, ..."""
    connect: bool
    """whether that protocol is Connect (not gRPC or gRPC-Web)"""
    send_compression: Any
    accept_compression: str
    """the accept-encoding header value"""
    response_compressions: Mapping[str, Any]
    timeout_ms: int | None
    read_max_bytes: int | None
    intercepted: bool
    """whether unary interceptors wrap its sends"""


def client_fields(client: Any) -> ClientFields:
    """``client``'s `ClientFields`."""
    return ClientFields(
        address=client._address,
        codec=client._codec,
        protocol=client._protocol,
        connect=isinstance(client._protocol, ConnectClientProtocol),
        send_compression=client._send_compression,
        accept_compression=client._accept_compression_header,
        response_compressions=client._response_compressions,
        timeout_ms=client._timeout_ms,
        read_max_bytes=client._read_max_bytes,
        intercepted=client._execute_unary != client._send_request_unary,
    )


def response_metadata_wanted() -> bool:
    """Whether the caller is inside a ``ResponseMetadata`` block (which wants the headers)."""
    return _current_response.get(None) is not None
