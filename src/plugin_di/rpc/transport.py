"""HTTP clients for an endpoint URL, and generated Connect clients built on them.

The transport behind a client is the one `plugin_di.rpc.mounts` picks for the URL's scheme
(``http://`` HTTP/1.1 keep-alive with gRPC over h2c, ``http+h2c://``, ``https://`` by ALPN,
``unix:///path``, the alias ``http+h1fast://``; see the table there); `asgi_http_client`
calls an ASGI app in process, with no socket.

Pooled HTTP/1.1 connections are dropped after 15 s idle (`IDLE_TIMEOUT`), below the
keep-alive timeout of servers (20 s or more), and a request that finds its pooled
connection closed by the server before any answer is retried once on a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping
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
    SyncTransport,
    Transport,
)
from pyqwest.testing import ASGITransport

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc._http1 import IDLE_TIMEOUT
from plugin_di.rpc.h1 import H1Transport
from plugin_di.rpc.h1sync import SyncH1Transport
from plugin_di.rpc.mounts import (
    BufferedTransport,
    HTTPMode,
    TransportOptions,
    client_address,
    mount_for,
    unix_socket_path,
)
from plugin_di.rpc.split import PYQWEST_SETTLE_SECONDS, SplitTransport, SyncSplitTransport
from plugin_di.rpc.unary_client import Link, Links, attach_unary_wire, unary_client_class

if TYPE_CHECKING:  # rpc.tls pulls in cryptography, which a plain-HTTP caller need not load
    from plugin_di.rpc.tls import ClientTLS

__all__ = [
    "IDLE_TIMEOUT",
    "BufferedTransport",
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

_BYTES_OR_NONE = (bytes, bytearray, memoryview, type(None))
_HeadersArg = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None
_Params = Any
_Fetch = Callable[[str, str, _HeadersArg, Any], Coroutine[Any, Any, FullResponse]]


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
        # A buffered transport answers buffered requests itself: no pyqwest Request/Response
        # round trip through Rust and no re-reading of the body, per call.
        self.buffered = transport if isinstance(transport, BufferedTransport) else None
        """The transport's buffered fast path, if it has one (for non-gRPC requests)."""
        self._fetch: _Fetch | None = None if self.buffered is None else self.buffered.fetch
        h1 = transport.h1 if isinstance(transport, SplitTransport) else transport
        self._link = Link(h1, address) if isinstance(h1, H1Transport) else None

    def wire_link(self) -> Link[H1Transport] | None:
        """Where Connect unary calls can go as bytes (`plugin_di.rpc.unary_client`): the lean
        HTTP/1.1 transport under this client, if it has one."""
        return self._link

    # Plain functions returning the coroutine: one frame less per call than ``async def``.
    def get(
        self, url: str, headers: _HeadersArg = None, *, params: _Params | None = None
    ) -> Coroutine[Any, Any, FullResponse]:
        """``Client.get``; on a `BufferedTransport`, its fast path."""
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
        """``Client.post``; on a `BufferedTransport`, its fast path for byte bodies."""
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
        """``Client.execute``; on a `BufferedTransport`, its fast path for byte bodies."""
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
            await asyncio.sleep(PYQWEST_SETTLE_SECONDS)


class PluginSyncHTTPClient:
    """The blocking counterpart: a ``pyqwest.SyncClient`` (``.client``) and its transport.

    pyqwest's ``SyncClient`` cannot be subclassed, so this holds it; ``connect_client``
    accepts either. Use ``with`` or ``close()``.
    """

    def __init__(self, transport: SyncTransport, address: str) -> None:
        self.client = SyncClient(transport)
        self.transport = transport
        self.address = address
        h1 = transport.h1 if isinstance(transport, SyncSplitTransport) else transport
        self._link = Link(h1, address) if isinstance(h1, SyncH1Transport) else None

    def wire_link(self) -> Link[SyncH1Transport] | None:
        """The blocking `PluginHTTPClient.wire_link`."""
        return self._link

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


def http_client(
    url: str,
    *,
    tls: ClientTLS | None = None,
    http_version: HTTPMode | str = HTTPMode.AUTO,
    read_timeout: float | None = None,
    connect_timeout: float = 10.0,
    clock: Clock = SYSTEM_CLOCK,
    decode: bool = True,
) -> PluginHTTPClient:
    """An HTTP client for ``url``, its transport chosen by the URL's scheme
    (`plugin_di.rpc.mounts`, whose `TransportOptions` says what each option does).

    Deadlines of single calls are the Connect client's ``timeout_ms``.
    """
    options = TransportOptions(
        HTTPMode(http_version), tls, read_timeout, connect_timeout, clock, decode
    )
    transport = mount_for(url).transport(url, options)
    # pyqwest's own transport runs threads that need a tick to settle after closing.
    settle = isinstance(transport, HTTPTransport)
    return PluginHTTPClient(transport, client_address(url), settle=settle)


def sync_http_client(
    url: str,
    *,
    tls: ClientTLS | None = None,
    http_version: HTTPMode | str = HTTPMode.AUTO,
    read_timeout: float | None = None,
    connect_timeout: float = 10.0,
    clock: Clock = SYSTEM_CLOCK,
) -> PluginSyncHTTPClient:
    """The blocking ``http_client``: same URL schemes, for generated ``XxxClientSync`` classes.

    Call-at-a-time code over HTTP/1.1 is fastest here (no event loop hop).
    """
    options = TransportOptions(HTTPMode(http_version), tls, read_timeout, connect_timeout, clock)
    return PluginSyncHTTPClient(mount_for(url).sync_transport(url, options), client_address(url))


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
    links = _wire_links(http_client) if protocol is ProtocolType.CONNECT else None
    cls = client_cls if links is None else unary_client_class(client_cls)
    client = cls(
        address,
        protocol=protocol,
        send_compression=None,
        accept_compression=[],
        timeout_ms=timeout_ms,
        read_max_bytes=read_max_bytes,
        interceptors=interceptors,
        http_client=http,
    )
    if links is not None:
        attach_unary_wire(client, links)
    return client


def _wire_links(http_client: object) -> Links[Any] | None:
    """``http_client``'s `wire_link`, when it has a lean transport for unary calls to take."""
    if not isinstance(http_client, PluginHTTPClient | PluginSyncHTTPClient):
        return None
    return http_client.wire_link if http_client.wire_link() is not None else None
