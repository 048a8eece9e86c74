"""The transport contract, and the one table that picks its implementation by URL scheme.

As httpx's ``mounts``: each URL scheme has a `Mount`, which builds the transport (async) or
sync transport for a base URL from `TransportOptions`. Every client builder
(`plugin_di.rpc.transport.http_client` and ``sync_http_client``) and the host's router get
their transports here, and depend only on pyqwest's ``Transport`` protocol plus, where a
transport has one, its `BufferedTransport` fast path: no caller names a concrete class.

==============================  ========================================================
URL                             transport (``HTTPMode.AUTO``, the default)
==============================  ========================================================
``http://host:port``            HTTP/1.1 with pooled keep-alive connections
                                (`plugin_di.rpc.h1`), as Go's net/http and connect-go speak
                                it; gRPC-protocol requests over HTTP/2 cleartext with prior
                                knowledge to the same address (`plugin_di.rpc.split`)
``http+h1fast://host:port``     an alias of ``http://`` (kept for old configurations)
``http+h2c://host:port``        pyqwest, HTTP/2 cleartext with prior knowledge, for all
``https://host:port``           pyqwest, TLS (CA or pinned server certificate, optional
                                client certificate for mTLS), ALPN h2 / http/1.1
``unix:///path/to.sock``        HTTP/1.1 keep-alive on the socket (no gRPC)
==============================  ========================================================

``HTTPMode`` changes what ``http://`` speaks: ``H2`` is HTTP/2 with prior knowledge for every
request (what ``http+h2c://`` spells in the URL); ``HTTP1`` is HTTP/1.1 only (the gRPC
protocol then fails). On ``https://``, ``HTTP1`` turns ALPN off.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from pyqwest import (
    FullResponse,
    HTTPTransport,
    HTTPVersion,
    Request,
    Response,
    SyncHTTPTransport,
    SyncTransport,
    Transport,
)

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc._http1 import IDLE_TIMEOUT, HeadersArg, RequestBody, split_url
from plugin_di.rpc.h1 import H1Transport
from plugin_di.rpc.h1sync import SyncH1Transport
from plugin_di.rpc.split import SplitTransport, SyncSplitTransport

if TYPE_CHECKING:  # rpc.tls pulls in cryptography, which a plain-HTTP caller need not load
    from plugin_di.rpc.tls import ClientTLS

__all__ = [
    "IDLE_TIMEOUT",
    "MOUNTS",
    "BufferedTransport",
    "HTTPMode",
    "Mount",
    "TransportOptions",
    "client_address",
    "mount_for",
    "split_url",
    "unix_socket_path",
]

_UNIX_HOST = "localhost"
_T = TypeVar("_T")


class HTTPMode(StrEnum):
    """Which HTTP a ``http://`` URL is spoken with."""

    AUTO = "auto"
    """HTTP/1.1 keep-alive, gRPC requests over h2c; ALPN on https."""
    H2 = "h2"
    """HTTP/2 cleartext with prior knowledge (pyqwest) for every request."""
    HTTP1 = "http1"
    """HTTP/1.1 only: no gRPC protocol."""
    H1FAST = "h1fast"
    """An alias of ``http1`` (kept for old configurations)."""


@runtime_checkable
class BufferedTransport(Protocol):
    """A pyqwest ``Transport`` that also answers a request with an in-memory body whole, its
    fast path (no pyqwest Request/Response round trip). Both methods undo a gzip or deflate
    content-encoding themselves, whatever ``decode`` was."""

    async def execute(self, request: Request) -> Response:
        """Send ``request``; the response body may still be streaming."""
        ...

    async def fetch(
        self, method: str, url: str, headers: HeadersArg = None, content: RequestBody = None
    ) -> FullResponse:
        """Send a request with an in-memory body and return the whole, decoded response."""
        ...


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """How a mount builds a transport.

    ``tls`` (``plugin_di.rpc.tls.ClientTLS``) holds the CA or pinned server certificate and,
    for mTLS, the client certificate and key; without it ``https://`` trusts the system CAs.
    ``read_timeout`` bounds each socket read of the HTTP/1.1 transports (and the whole
    request on pyqwest's); ``decode=False`` (a relay) leaves pyqwest's response bodies as
    they came and follows no redirect.
    """

    mode: HTTPMode = HTTPMode.AUTO
    tls: ClientTLS | None = None
    read_timeout: float | None = None
    connect_timeout: float = 10.0
    clock: Clock = SYSTEM_CLOCK
    decode: bool = True

    def pyqwest(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for pyqwest's transports."""
        options: dict[str, Any] = {
            "timeout": self.read_timeout,
            "connect_timeout": self.connect_timeout,
        }
        if not self.decode:  # a relay passes bodies on as they came, never following redirects
            options.update(
                enable_gzip=False,
                enable_brotli=False,
                enable_zstd=False,
                follow_redirects=False,
                enable_otel=False,
            )
        return {**options, **overrides}

    def h1(self, unix_path: str | None = None) -> dict[str, Any]:
        """Keyword arguments for the HTTP/1.1 transports."""
        return {
            "unix_path": unix_path,
            "idle_timeout": IDLE_TIMEOUT,
            "read_timeout": self.read_timeout,
            "connect_timeout": self.connect_timeout,
            "clock": self.clock,
        }

    def cleartext(self, url: str) -> None:
        """Refuse TLS settings given for a cleartext URL."""
        if self.tls is not None:
            raise ValueError(f"TLS settings were given for {url!r}; use an https:// URL")

    @property
    def http1_only(self) -> bool:
        return self.mode in (HTTPMode.HTTP1, HTTPMode.H1FAST)


class Mount(Protocol):
    """Builds the transports of one URL scheme."""

    http1_cleartext: bool
    """Whether non-gRPC requests of the default mode go over HTTP/1.1 on cleartext."""

    def transport(self, url: str, options: TransportOptions) -> Transport:
        """An async transport for base URL ``url``."""
        ...

    def sync_transport(self, url: str, options: TransportOptions) -> SyncTransport:
        """A blocking transport for base URL ``url``."""
        ...


class _Cleartext:
    """``http://``: HTTP/1.1 keep-alive, gRPC over h2c (by ``HTTPMode``)."""

    http1_cleartext = True

    def transport(self, url: str, options: TransportOptions) -> Transport:
        options.cleartext(url)
        if options.mode is HTTPMode.H2:
            return HTTPTransport(**options.pyqwest(http_version=HTTPVersion.HTTP2))
        h1 = H1Transport(**options.h1())
        if options.http1_only:
            return h1
        return SplitTransport(h1, _h2c(HTTPTransport, options))

    def sync_transport(self, url: str, options: TransportOptions) -> SyncTransport:
        options.cleartext(url)
        if options.mode is HTTPMode.H2:
            return SyncHTTPTransport(**options.pyqwest(http_version=HTTPVersion.HTTP2))
        h1 = SyncH1Transport(**options.h1())
        if options.http1_only:
            return h1
        return SyncSplitTransport(h1, _h2c(SyncHTTPTransport, options))


def _h2c(make: Callable[..., _T], options: TransportOptions) -> Callable[[], _T]:
    return functools.partial(make, **options.pyqwest(http_version=HTTPVersion.HTTP2))


class _H2C:
    """``http+h2c://``: HTTP/2 cleartext with prior knowledge, for every request."""

    http1_cleartext = False

    def transport(self, url: str, options: TransportOptions) -> Transport:
        options.cleartext(url)
        return HTTPTransport(**options.pyqwest(http_version=HTTPVersion.HTTP2))

    def sync_transport(self, url: str, options: TransportOptions) -> SyncTransport:
        options.cleartext(url)
        return SyncHTTPTransport(**options.pyqwest(http_version=HTTPVersion.HTTP2))


class _TLS:
    """``https://``: pyqwest over TLS, ALPN h2 / http/1.1 (``HTTPMode.HTTP1``: http/1.1)."""

    http1_cleartext = False

    def transport(self, url: str, options: TransportOptions) -> Transport:
        return HTTPTransport(**self._options(options))

    def sync_transport(self, url: str, options: TransportOptions) -> SyncTransport:
        return SyncHTTPTransport(**self._options(options))

    @staticmethod
    def _options(options: TransportOptions) -> dict[str, Any]:
        tls: dict[str, Any] = options.tls.transport_kwargs() if options.tls is not None else {}
        return options.pyqwest(
            **tls,
            tls_include_system_certs="tls_ca_cert" not in tls,
            http_version=HTTPVersion.HTTP1 if options.http1_only else None,
        )


class _Unix:
    """``unix:///path``: HTTP/1.1 keep-alive on a Unix socket."""

    http1_cleartext = True

    def transport(self, url: str, options: TransportOptions) -> Transport:
        return H1Transport(**options.h1(unix_socket_path(url)))

    def sync_transport(self, url: str, options: TransportOptions) -> SyncTransport:
        return SyncH1Transport(**options.h1(unix_socket_path(url)))


MOUNTS: Mapping[str, Mount] = {
    "http://": _Cleartext(),
    "http+h1fast://": _Cleartext(),
    "http+h2c://": _H2C(),
    "https://": _TLS(),
    "unix:": _Unix(),
}
"""URL prefix -> the mount that serves it."""


def mount_for(url: str) -> Mount:
    """The mount serving ``url``; ValueError for a scheme no mount serves."""
    for prefix, mount in MOUNTS.items():
        if url.startswith(prefix):
            return mount
    raise ValueError(
        f"unsupported endpoint URL {url!r}: use http://, https://, unix:///, http+h2c:// "
        "or http+h1fast://"
    )


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
