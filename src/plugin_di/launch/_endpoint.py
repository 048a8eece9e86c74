"""Clients that outlive the process behind them: the endpoint is swapped, not the client.

Dependents receive generated Connect clients built once, on a fixed placeholder
address (``http://<plugin>.plugin-di.invalid``) and an `EndpointClient`, a
``pyqwest.Client`` whose requests are rewritten to whichever endpoint is bound
now. When the plugin restarts somewhere else the launcher binds the new address;
every client object stays the same. While nothing is bound, calls fail at once
with UNAVAILABLE (connectrpc maps the ``ConnectionError``), and calls in flight
when the process dies fail the same way, because its connections break.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pyqwest
from connectrpc.client import ConnectClient
from connectrpc.interceptor import Interceptor

from plugin_di.rpc.h1 import H1Transport
from plugin_di.rpc.transport import PluginHTTPClient, http_client
from plugin_di.rpc.unary_client import Link, attach_unary_wire, unary_client_class

if TYPE_CHECKING:
    from plugin_di.rpc.tls import ClientTLS

ClientT = TypeVar("ClientT", bound=ConnectClient)
HeadersLike = pyqwest.Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None


class PluginUnavailableError(ConnectionError):
    """The plugin has no live endpoint right now (not started, crashed, restarting, stopped)."""


@dataclass
class Target:
    """A live endpoint: the base address requests go to and the client that sends them."""

    address: str
    http_client: pyqwest.Client
    close: Callable[[], Awaitable[None]] | None = None


def target_for(url: str, cert_der: bytes = b"", *, tls: ClientTLS | None = None) -> Target:
    """The `Target` for a plugin URL (``http://``, ``https://``, ``unix:///``...).

    The transport is `plugin_di.rpc.transport.http_client`'s choice for the scheme.
    ``cert_der``, the certificate from a handshake line, is pinned: it is the only
    certificate trusted for this endpoint (``tls``'s client certificate, if any, is still
    presented: automatic mTLS); otherwise ``tls`` (CA, client certificate) applies to
    ``https://`` URLs.
    """
    if cert_der:
        from plugin_di.rpc.tls import ClientTLS, der_to_pem  # cryptography: only when needed

        own = tls if tls is not None else ClientTLS()
        tls = ClientTLS(ca_pem=der_to_pem(cert_der), cert_pem=own.cert_pem, key_pem=own.key_pem)
    client = http_client(url, tls=tls)
    return Target(client.address, client, client.aclose)


class EndpointClient(pyqwest.Client):
    """A ``pyqwest.Client`` that forwards to the currently bound `Target`.

    ``auth``: interceptors every client built here gets innermost (after the caller's), such
    as the launcher's per-launch secret, so they also reach PluginControl calls.
    """

    def __init__(self, name: str, *, auth: Iterable[Interceptor] = ()) -> None:
        super().__init__()
        self.name = name
        self.auth = tuple(auth)
        self.base = f"http://{name}.plugin-di.invalid"
        self._target: Target | None = None
        self._reason = "not started"
        self._clients: dict[type[Any], Any] = {}

    @property
    def target(self) -> Target | None:
        return self._target

    def bind(self, target: Target) -> Target | None:
        """Send new requests to ``target``; returns the previous one (close it)."""
        previous, self._target = self._target, target
        return previous

    def unbind(self, reason: str) -> Target | None:
        """Fail new requests with UNAVAILABLE, saying ``reason``; returns the previous target."""
        previous, self._target = self._target, None
        self._reason = reason
        return previous

    def client(
        self,
        client_cls: type[ClientT],
        *,
        interceptors: Iterable[Interceptor] = (),
        timeout_ms: int | None = None,
    ) -> ClientT:
        """The one ``client_cls`` instance on this endpoint (built on first use)."""
        existing = self._clients.get(client_cls)
        if existing is None:
            existing = unary_client_class(client_cls)(
                self.base,
                http_client=self,
                interceptors=[*interceptors, *self.auth],
                send_compression=None,
                accept_compression=[],
                timeout_ms=timeout_ms,
            )
            # Unary calls go out as bytes on the bound target's lean transport, if it has one.
            attach_unary_wire(existing, self.wire_link)
            self._clients[client_cls] = existing
        result: ClientT = existing
        return result

    def wire_link(self) -> Link[H1Transport] | None:
        """The bound target's `PluginHTTPClient.wire_link` (None while nothing is bound)."""
        target = self._target
        if target is None or not isinstance(target.http_client, PluginHTTPClient):
            return None
        return target.http_client.wire_link()

    def _route(self, url: str) -> tuple[pyqwest.Client, str]:
        target = self._target
        if target is None:
            raise PluginUnavailableError(f"plugin {self.name!r} is unavailable: {self._reason}")
        if url.startswith(self.base):
            url = target.address + url[len(self.base) :]
        return target.http_client, url

    async def get(
        self, url: str, headers: HeadersLike = None, *, params: Any = None
    ) -> pyqwest.FullResponse:
        client, real = self._route(url)
        return await client.get(real, headers=headers, params=params)

    async def post(
        self, url: str, headers: HeadersLike = None, content: Any = None, *, params: Any = None
    ) -> pyqwest.FullResponse:
        client, real = self._route(url)
        return await client.post(real, headers=headers, content=content, params=params)

    async def execute(
        self,
        method: str,
        url: str,
        headers: HeadersLike = None,
        content: Any = None,
        *,
        params: Any = None,
    ) -> pyqwest.FullResponse:
        client, real = self._route(url)
        return await client.execute(method, real, headers=headers, content=content, params=params)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        headers: HeadersLike = None,
        content: Any = None,
        *,
        params: Any = None,
    ) -> AsyncGenerator[pyqwest.Response]:
        client, real = self._route(url)
        async with client.stream(
            method, real, headers=headers, content=content, params=params
        ) as response:
            yield response


async def close_target(target: Target | None) -> None:
    """Close a target's transport, if it has one to close (calls still running on it fail)."""
    if target is None or target.close is None:
        return
    with contextlib.suppress(Exception):
        await target.close()
