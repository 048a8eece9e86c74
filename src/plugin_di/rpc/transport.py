"""Pick the HTTP client for an endpoint URL, and build generated Connect clients on it.

=============================  ==========================================================
URL                            transport
=============================  ==========================================================
``http://host:port``           pyqwest, HTTP/2 cleartext with prior knowledge (default;
                               needed for the gRPC protocol), or HTTP/1.1
``https://host:port``          pyqwest, TLS (CA or pinned server certificate, optional
                               client certificate for mTLS), ALPN h2 / http/1.1
``unix:///path/to.sock``       ``H1Transport``: lean HTTP/1.1 keep-alive pool on the socket
``http+h1fast://host:port``    ``H1Transport`` over TCP: the fast loopback path
(an ASGI app)                  ``asgi_http_client``: in-process, no socket
=============================  ==========================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

from connectrpc.interceptor import Interceptor, InterceptorSync
from connectrpc.protocol import ProtocolType
from pyqwest import (
    Client,
    FullResponse,
    Headers,
    HTTPTransport,
    HTTPVersion,
    SyncClient,
    SyncHTTPTransport,
    SyncTransport,
    Transport,
)
from pyqwest.testing import ASGITransport

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc.h1 import H1Transport
from plugin_di.rpc.h1sync import SyncH1Transport

if TYPE_CHECKING:  # rpc.tls pulls in cryptography, which a plain-HTTP caller need not load
    from plugin_di.rpc.tls import ClientTLS

__all__ = [
    "HTTPMode",
    "PluginHTTPClient",
    "PluginSyncHTTPClient",
    "asgi_http_client",
    "client_address",
    "connect_client",
    "http_client",
    "sync_http_client",
    "unix_socket_path",
]

# pyqwest's tokio threads can abort the interpreter at exit unless the loop runs a little
# after the transport is closed (measured: 0.05 s gave 0 failures in 30 runs).
_PYQWEST_SETTLE_SECONDS = 0.05
_UNIX_HOST = "localhost"
_BYTES_OR_NONE = (bytes, bytearray, memoryview, type(None))
_HeadersArg = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None
_Params = Any


class HTTPMode(StrEnum):
    """Which HTTP a ``http://`` URL is spoken with."""

    H2 = "h2"
    """HTTP/2 cleartext with prior knowledge (pyqwest); the only one that carries gRPC."""
    HTTP1 = "http1"
    """HTTP/1.1 (pyqwest)."""
    H1FAST = "h1fast"
    """HTTP/1.1 with the lean pure-Python transport: the fastest on loopback."""


class PluginHTTPClient(Client):
    """A ``pyqwest.Client`` that owns its transport and closes it cleanly.

    ``address`` is the base URL to give a generated Connect client (for a Unix socket it is
    ``http://localhost``; the transport knows the path). Use ``async with`` or ``aclose()``.
    """

    def __init__(self, transport: Transport, address: str, *, settle: bool = False) -> None:
        super().__init__(transport)
        self.transport = transport
        self.address = address
        self._settle = settle
        self._entered = False
        # The lean transport answers buffered requests itself: no pyqwest Request/Response
        # round trip through Rust and no re-reading of the body, per call.
        self._fetch = transport.fetch if isinstance(transport, H1Transport) else None

    # Plain functions returning the coroutine: one frame less per call than ``async def``.
    def get(
        self, url: str, headers: _HeadersArg = None, *, params: _Params | None = None
    ) -> Coroutine[Any, Any, FullResponse]:
        """``Client.get``; on the lean transport, its buffered fast path."""
        if self._fetch is not None and params is None:
            return self._fetch("GET", url, headers, None)
        return super().get(url, headers, params=params)

    def post(
        self,
        url: str,
        headers: _HeadersArg = None,
        content: Any = None,
        *,
        params: _Params | None = None,
    ) -> Coroutine[Any, Any, FullResponse]:
        """``Client.post``; on the lean transport, its buffered fast path for byte bodies."""
        if self._fetch is not None and params is None and isinstance(content, _BYTES_OR_NONE):
            return self._fetch("POST", url, headers, content)
        return super().post(url, headers, content, params=params)

    def execute(
        self,
        method: str,
        url: str,
        headers: _HeadersArg = None,
        content: Any = None,
        *,
        params: _Params | None = None,
    ) -> Coroutine[Any, Any, FullResponse]:
        """``Client.execute``; on the lean transport, its buffered fast path for byte bodies."""
        if self._fetch is not None and params is None and isinstance(content, _BYTES_OR_NONE):
            return self._fetch(method, url, headers, content)
        return super().execute(method, url, headers, content, params=params)

    async def __aenter__(self) -> Self:
        enter = getattr(self.transport, "__aenter__", None)
        if enter is not None:
            await enter()
            self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the transport; for pyqwest's own, give its threads a tick to settle."""
        if isinstance(self.transport, ASGITransport):
            if self._entered:
                await self.transport.__aexit__(None, None, None)
        else:
            close = getattr(self.transport, "aclose", None)
            if close is not None:
                await close()
        self._entered = False
        if self._settle:
            await asyncio.sleep(_PYQWEST_SETTLE_SECONDS)


class PluginSyncHTTPClient:
    """The blocking counterpart: a ``pyqwest.SyncClient`` (``.client``) and its transport.

    pyqwest's ``SyncClient`` cannot be subclassed, so this holds it; ``connect_client``
    accepts either. Use ``with`` or ``close()``.
    """

    def __init__(self, transport: SyncTransport, address: str) -> None:
        self.client = SyncClient(transport)
        self.transport = transport
        self.address = address

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the transport."""
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()


def client_address(url: str) -> str:
    """The base URL a generated client should use for an endpoint URL."""
    if url.startswith("unix:"):
        return f"http://{_UNIX_HOST}"
    if url.startswith("http+h1fast://"):
        return "http://" + url.removeprefix("http+h1fast://").rstrip("/")
    return url.rstrip("/")


def unix_socket_path(url: str) -> str:
    """``unix:///run/p.sock`` or ``unix:/run/p.sock`` -> ``/run/p.sock``."""
    path = url.removeprefix("unix:")
    if path.startswith("//"):
        path = path[2:]
    if not path.startswith("/"):
        raise ValueError(f"unix socket URL {url!r} needs an absolute path: unix:///abs/path")
    return path


def _lean_target(url: str, mode: HTTPMode) -> tuple[bool, str | None]:
    """Whether ``url`` takes the lean HTTP/1.1 transport, and its Unix socket path (None: TCP)."""
    if url.startswith("unix:"):
        return True, unix_socket_path(url)
    lean = url.startswith("http+h1fast://") or (
        url.startswith("http://") and mode is HTTPMode.H1FAST
    )
    return lean, None


def _pyqwest_options(
    url: str,
    mode: HTTPMode,
    tls: ClientTLS | None,
    read_timeout: float | None,
    connect_timeout: float,
) -> dict[str, Any]:
    """Keyword arguments for pyqwest's ``HTTPTransport`` / ``SyncHTTPTransport`` for ``url``."""
    timeouts: dict[str, Any] = {"timeout": read_timeout, "connect_timeout": connect_timeout}
    if url.startswith("http://"):
        if tls is not None:
            raise ValueError(f"TLS settings were given for {url!r}; use an https:// URL")
        version = HTTPVersion.HTTP1 if mode is HTTPMode.HTTP1 else HTTPVersion.HTTP2
        return {"http_version": version, **timeouts}
    if url.startswith("https://"):
        if mode is HTTPMode.H1FAST:
            raise ValueError("the lean HTTP/1.1 transport has no TLS; use h2 or http1 for https")
        tls_kwargs: dict[str, Any] = tls.transport_kwargs() if tls is not None else {}
        return {
            **tls_kwargs,
            "tls_include_system_certs": "tls_ca_cert" not in tls_kwargs,
            "http_version": HTTPVersion.HTTP1 if mode is HTTPMode.HTTP1 else None,
            **timeouts,
        }
    raise ValueError(
        f"unsupported endpoint URL {url!r}: use http://, https://, unix:/// or http+h1fast://"
    )


def http_client(
    url: str,
    *,
    tls: ClientTLS | None = None,
    http_version: HTTPMode | str = HTTPMode.H2,
    read_timeout: float | None = None,
    connect_timeout: float = 10.0,
    clock: Clock = SYSTEM_CLOCK,
) -> PluginHTTPClient:
    """An HTTP client for ``url``, the transport chosen by its scheme (see the module doc).

    ``tls`` (``plugin_di.rpc.tls.ClientTLS``) holds the CA or pinned server certificate and,
    for mTLS, the client certificate and key; without it ``https://`` trusts the system CAs.

    ``read_timeout`` bounds each socket read of the lean transport (and the whole request on
    pyqwest's); deadlines of single calls are the Connect client's ``timeout_ms``.
    """
    mode = HTTPMode(http_version)
    lean_transport, path = _lean_target(url, mode)
    if lean_transport:
        lean = H1Transport(
            unix_path=path,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            clock=clock,
        )
        return PluginHTTPClient(lean, client_address(url))
    options = _pyqwest_options(url, mode, tls, read_timeout, connect_timeout)
    return PluginHTTPClient(HTTPTransport(**options), client_address(url), settle=True)


def sync_http_client(
    url: str,
    *,
    tls: ClientTLS | None = None,
    http_version: HTTPMode | str = HTTPMode.H2,
    read_timeout: float | None = None,
    connect_timeout: float = 10.0,
    clock: Clock = SYSTEM_CLOCK,
) -> PluginSyncHTTPClient:
    """The blocking ``http_client``: same URL schemes, for generated ``XxxClientSync`` classes.

    Call-at-a-time code on ``unix://`` or ``h1fast`` is fastest here (no event loop hop).
    """
    mode = HTTPMode(http_version)
    lean_transport, path = _lean_target(url, mode)
    if lean_transport:
        lean = SyncH1Transport(
            unix_path=path,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            clock=clock,
        )
        return PluginSyncHTTPClient(lean, client_address(url))
    options = _pyqwest_options(url, mode, tls, read_timeout, connect_timeout)
    return PluginSyncHTTPClient(SyncHTTPTransport(**options), client_address(url))


def asgi_http_client(
    app: Any, *, http_version: HTTPVersion = HTTPVersion.HTTP2
) -> PluginHTTPClient:
    """An in-process client calling the ASGI ``app`` directly (full wire path, no socket).

    Enter it with ``async with`` to run the app's lifespan startup (and shutdown on exit).
    """
    return PluginHTTPClient(ASGITransport(app, http_version=http_version), "http://inproc")


class _GeneratedClient(Protocol):
    def __init__(
        self,
        address: str,
        *,
        protocol: ProtocolType = ...,
        accept_compression: Any = ...,
        send_compression: Any = ...,
        timeout_ms: int | None = ...,
        read_max_bytes: int | None = ...,
        interceptors: Iterable[Any] = ...,
        http_client: Any = ...,
    ) -> None: ...


_C = TypeVar("_C", bound=_GeneratedClient)


def connect_client(
    client_cls: type[_C],
    url: str,
    http_client: Client | SyncClient | PluginSyncHTTPClient,
    *,
    interceptors: Iterable[Interceptor | InterceptorSync] = (),
    protocol: ProtocolType = ProtocolType.CONNECT,
    timeout_ms: int | None = None,
    read_max_bytes: int | None = None,
) -> _C:
    """Build a generated ``XxxClient`` (or ``XxxClientSync`` on a sync client) for ``url``.

    Compression is off: it costs more than it saves on loopback and Unix sockets, and the
    generated default gzips every request.
    """
    http: Client | SyncClient
    if isinstance(http_client, PluginSyncHTTPClient):
        address, http = http_client.address, http_client.client
    elif isinstance(http_client, PluginHTTPClient):
        address, http = http_client.address, http_client
    else:
        address, http = client_address(url), http_client
    return client_cls(
        address,
        protocol=protocol,
        send_compression=None,
        accept_compression=[],
        timeout_ms=timeout_ms,
        read_max_bytes=read_max_bytes,
        interceptors=interceptors,
        http_client=http,
    )
