"""Pick the HTTP client for an endpoint URL, and build generated Connect clients on it.

==============================  ========================================================
URL                             transport (``http_version="auto"``, the default)
==============================  ========================================================
``http://host:port``            HTTP/1.1 with pooled keep-alive connections (the lean
                                ``H1Transport``), as Go's net/http and connect-go speak
                                it; gRPC-protocol requests go over HTTP/2 cleartext with
                                prior knowledge to the same address (`SplitTransport`)
``http+h2c://host:port``        pyqwest, HTTP/2 cleartext with prior knowledge, for all
``https://host:port``           pyqwest, TLS (CA or pinned server certificate, optional
                                client certificate for mTLS), ALPN h2 / http/1.1
``unix:///path/to.sock``        ``H1Transport`` on the socket (HTTP/1.1: no gRPC)
``http+h1fast://host:port``     an alias of ``http://`` (kept for old configurations)
(an ASGI app)                   ``asgi_http_client``: in-process, no socket
==============================  ========================================================

``http_version`` changes what ``http://`` speaks: ``"h2"`` is HTTP/2 with prior knowledge
for every request (what ``http+h2c://`` spells in the URL); ``"http1"`` is HTTP/1.1 only
(the gRPC protocol then fails). On ``https://``, ``"http1"`` turns ALPN off.

Pooled HTTP/1.1 connections are dropped after 15 s idle (`IDLE_TIMEOUT`), below the
keep-alive timeout of servers (20 s or more), and a request that finds its pooled
connection closed by the server before any answer is retried once on a new one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
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
from plugin_di.rpc._http1 import IDLE_TIMEOUT
from plugin_di.rpc.h1 import H1Transport
from plugin_di.rpc.h1sync import SyncH1Transport
from plugin_di.rpc.split import PYQWEST_SETTLE_SECONDS, SplitTransport, SyncSplitTransport

if TYPE_CHECKING:  # rpc.tls pulls in cryptography, which a plain-HTTP caller need not load
    from plugin_di.rpc.tls import ClientTLS

__all__ = [
    "IDLE_TIMEOUT",
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

_UNIX_HOST = "localhost"
_BYTES_OR_NONE = (bytes, bytearray, memoryview, type(None))
_HeadersArg = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None
_Params = Any
_Fetch = Callable[[str, str, _HeadersArg, Any], Coroutine[Any, Any, FullResponse]]


class HTTPMode(StrEnum):
    """Which HTTP a ``http://`` URL is spoken with."""

    AUTO = "auto"
    """HTTP/1.1 keep-alive (the lean transport), gRPC requests over h2c; ALPN on https."""
    H2 = "h2"
    """HTTP/2 cleartext with prior knowledge (pyqwest) for every request."""
    HTTP1 = "http1"
    """HTTP/1.1 only (the lean transport on cleartext): no gRPC protocol."""
    H1FAST = "h1fast"
    """An alias of ``http1`` (kept for old configurations)."""


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
        self._fetch: _Fetch | None = None
        if isinstance(transport, H1Transport | SplitTransport):
            self._fetch = transport.fetch

    @property
    def lean(self) -> H1Transport | None:
        """The lean HTTP/1.1 transport serving this client's non-gRPC requests, if any."""
        transport = self.transport
        if isinstance(transport, H1Transport):
            return transport
        return transport.h1 if isinstance(transport, SplitTransport) else None

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


_CLEARTEXT_ALIASES = ("http+h1fast://", "http+h2c://")


def client_address(url: str) -> str:
    """The base URL a generated client should use for an endpoint URL."""
    if url.startswith("unix:"):
        return f"http://{_UNIX_HOST}"
    for alias in _CLEARTEXT_ALIASES:
        if url.startswith(alias):
            return "http://" + url.removeprefix(alias).rstrip("/")
    return url.rstrip("/")


def unix_socket_path(url: str) -> str:
    """``unix:///run/p.sock`` or ``unix:/run/p.sock`` -> ``/run/p.sock``."""
    path = url.removeprefix("unix:")
    if path.startswith("//"):
        path = path[2:]
    if not path.startswith("/"):
        raise ValueError(f"unix socket URL {url!r} needs an absolute path: unix:///abs/path")
    return path


@dataclass(frozen=True, slots=True)
class _Plan:
    """How a URL is spoken: the lean HTTP/1.1 pool, pyqwest, or both (`SplitTransport`)."""

    lean: bool
    unix_path: str | None = None
    pyqwest: dict[str, Any] | None = None  # options of pyqwest's transport, if one is used


def _plan(
    url: str,
    mode: HTTPMode,
    tls: ClientTLS | None,
    read_timeout: float | None,
    connect_timeout: float,
    decode: bool,
) -> _Plan:
    options: dict[str, Any] = {"timeout": read_timeout, "connect_timeout": connect_timeout}
    if not decode:  # a relay passes bodies on as they came, and never follows redirects
        options.update(
            enable_gzip=False,
            enable_brotli=False,
            enable_zstd=False,
            follow_redirects=False,
            enable_otel=False,
        )
    if url.startswith("unix:"):
        return _Plan(lean=True, unix_path=unix_socket_path(url))
    if url.startswith(("http://", *_CLEARTEXT_ALIASES)):
        if tls is not None:
            raise ValueError(f"TLS settings were given for {url!r}; use an https:// URL")
        h2 = {**options, "http_version": HTTPVersion.HTTP2}
        if url.startswith("http+h2c://") or mode is HTTPMode.H2:
            return _Plan(lean=False, pyqwest=h2)
        if mode in (HTTPMode.HTTP1, HTTPMode.H1FAST):
            return _Plan(lean=True)
        return _Plan(lean=True, pyqwest=h2)  # AUTO: gRPC over h2c beside the pool
    if url.startswith("https://"):
        tls_kwargs: dict[str, Any] = tls.transport_kwargs() if tls is not None else {}
        http1 = mode in (HTTPMode.HTTP1, HTTPMode.H1FAST)
        return _Plan(
            lean=False,
            pyqwest={
                **options,
                **tls_kwargs,
                "tls_include_system_certs": "tls_ca_cert" not in tls_kwargs,
                "http_version": HTTPVersion.HTTP1 if http1 else None,
            },
        )
    raise ValueError(
        f"unsupported endpoint URL {url!r}: use http://, https://, unix:///, http+h2c:// "
        "or http+h1fast://"
    )


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
    """An HTTP client for ``url``, the transport chosen by its scheme (see the module doc).

    ``tls`` (``plugin_di.rpc.tls.ClientTLS``) holds the CA or pinned server certificate and,
    for mTLS, the client certificate and key; without it ``https://`` trusts the system CAs.

    ``read_timeout`` bounds each socket read of the lean transport (and the whole request on
    pyqwest's); deadlines of single calls are the Connect client's ``timeout_ms``.
    ``decode=False`` (a relay) leaves response bodies as they came and follows no redirect.
    """
    plan = _plan(url, HTTPMode(http_version), tls, read_timeout, connect_timeout, decode)
    address = client_address(url)
    if not plan.lean:
        assert plan.pyqwest is not None
        return PluginHTTPClient(HTTPTransport(**plan.pyqwest), address, settle=True)
    lean = H1Transport(
        unix_path=plan.unix_path,
        idle_timeout=IDLE_TIMEOUT,
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        clock=clock,
    )
    if plan.pyqwest is None:
        return PluginHTTPClient(lean, address)
    h2 = functools.partial(HTTPTransport, **plan.pyqwest)
    return PluginHTTPClient(SplitTransport(lean, h2), address)


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
    plan = _plan(url, HTTPMode(http_version), tls, read_timeout, connect_timeout, True)
    address = client_address(url)
    if not plan.lean:
        assert plan.pyqwest is not None
        return PluginSyncHTTPClient(SyncHTTPTransport(**plan.pyqwest), address)
    lean = SyncH1Transport(
        unix_path=plan.unix_path,
        idle_timeout=IDLE_TIMEOUT,
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        clock=clock,
    )
    if plan.pyqwest is None:
        return PluginSyncHTTPClient(lean, address)
    h2 = functools.partial(SyncHTTPTransport, **plan.pyqwest)
    return PluginSyncHTTPClient(SyncSplitTransport(lean, h2), address)


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
