"""The service router: ``/services/{type}/{provider_id}/[{Service}/]{Method}`` reverse proxy.

The path is parsed once (`plugin_di.host.routepath`), from the bytes the caller sent, and
only ``/{Service}/{Method}`` of the service the provider registered travels on: no path
the caller writes can reach another service of the provider (its PluginControl, say).
The caller must present live runtime credentials, which are stripped before forwarding.
The request and response bodies stream in both directions; gRPC trailers are passed
through; ``connect-timeout-ms`` / ``grpc-timeout`` travel with the request, so the provider
sees the caller's deadline. Errors produced by the router itself are written in the
caller's protocol (Connect, gRPC, gRPC-Web):

============================================  =====================
the router refuses                            code
============================================  =====================
a malformed path or query                     INVALID_ARGUMENT
missing or wrong credentials                  UNAUTHENTICATED
the caller's rate spent                       RESOURCE_EXHAUSTED
an unknown provider or service type           NOT_FOUND
a service or method the provider did not      UNIMPLEMENTED
register (as a server answers an unknown
method)
the plugin control plane                      PERMISSION_DENIED
an unhealthy or unreachable provider          UNAVAILABLE
============================================  =====================

Upstream leg: one client per provider URL (`plugin_di.rpc.transport.http_client`, which
does not decode bodies here), its transport picked by the URL's scheme
(`plugin_di.rpc.mounts`): ``http://`` providers are reached over HTTP/1.1 keep-alive, as
connect-plugin-go serves, and gRPC requests over HTTP/2 cleartext; ``unix://`` over
HTTP/1.1; ``https://`` by ALPN. A request that is not gRPC goes through the transport's
buffered fast path (`plugin_di.rpc.mounts.BufferedTransport`) when it has one (a Connect
unary answer buffered in one piece); the rest stream through pyqwest, which carries
trailers. In-memory providers are ASGI apps and are called directly.

Blue-green replacement: ``switch(old, new)`` atomically points calls addressed to
``old`` at ``new``; ``drain(old)`` waits (event-driven) for ``old``'s in-flight calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pyqwest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.host._proxy import (
    Relay,
    is_grpc_request,
    is_unary,
    request_body,
    split_credentials,
)
from plugin_di.host.auth import RUNTIME_ID_HEADER, TokenValidator, check_credentials
from plugin_di.host.registry import ServiceRegistry
from plugin_di.host.routepath import (
    SERVICES_PREFIX,
    RouteTarget,
    checked_query,
    parse_route_path,
    raw_path_of,
    upstream_path,
)
from plugin_di.host.store import Registration
from plugin_di.rpc.asgi import GRPC_STATUS, ASGIApp, Receive, Scope, Send, send_error
from plugin_di.rpc.interceptors.ratelimit import Rate, TokenBucketLimiter
from plugin_di.rpc.telemetry import current as current_telemetry
from plugin_di.rpc.tls import ClientTLS
from plugin_di.rpc.transport import BufferedTransport, PluginHTTPClient, http_client

__all__ = ["SERVICES_PREFIX", "InFlightCalls", "ServiceRouter", "Upstream", "split_credentials"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upstream:
    """Where a provider is reached: a base URL, or an in-process ASGI app.

    ``http://`` is HTTP/1.1 (gRPC requests: HTTP/2 cleartext), ``http+h2c://`` HTTP/2
    cleartext, ``https://`` TLS trusting ``tls``, ``unix:///path`` HTTP/1.1 on a socket:
    the transports ``plugin_di.rpc.transport.http_client`` picks.
    """

    url: str = ""
    app: ASGIApp | None = None
    tls: ClientTLS | None = None


class InFlightCalls:
    """Calls in flight to one provider."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> None:
        self.count += 1
        self.idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.idle.set()


class ServiceRouter:
    """ASGI app mounted at ``/services/``."""

    def __init__(
        self,
        registry: ServiceRegistry,
        tokens: TokenValidator,
        *,
        limiter: TokenBucketLimiter | None = None,
        rate: Rate | None = None,
    ) -> None:
        self._registry = registry
        self._limiter = limiter
        self._rate = rate
        self._tokens = tokens
        self._upstreams: dict[str, Upstream] = {}
        self._aliases: dict[str, str] = {}
        self._in_flight: dict[str, InFlightCalls] = {}
        self._clients: dict[str, PluginHTTPClient] = {}
        self._closing: set[asyncio.Task[None]] = set()

    # -- endpoints -----------------------------------------------------------------------
    def set_upstream(self, runtime_id: str, upstream: Upstream) -> None:
        """Where ``runtime_id`` is reached (overrides a registration's ``base_url``)."""
        self._upstreams[runtime_id] = upstream

    def remove(self, runtime_id: str) -> None:
        """Forget a provider and the aliases pointing to it.

        An alias *from* it (set by ``switch``) stays: callers that discovered the
        replaced provider keep reaching its successor.
        """
        upstream = self._upstreams.pop(runtime_id, None)
        for old, new in list(self._aliases.items()):
            if new == runtime_id:
                del self._aliases[old]
        if upstream is not None and all(u.url != upstream.url for u in self._upstreams.values()):
            self._close_client(upstream.url)

    def _close_client(self, url: str) -> None:
        """Close the client of a URL no provider uses any more (its idle connections)."""
        client = self._clients.pop(url, None)
        if client is None:
            return
        try:
            closing = asyncio.get_running_loop().create_task(client.aclose())
        except RuntimeError:  # no loop: nothing can be awaited; the pool dies with it
            return
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def switch(self, old: str, new: str) -> None:
        """From now on, calls addressed to ``old`` go to ``new`` (one dict write: atomic)."""
        for alias, target in list(self._aliases.items()):
            if target == old:
                self._aliases[alias] = new
        self._aliases[old] = new

    def resolve(self, runtime_id: str) -> str:
        return self._aliases.get(runtime_id, runtime_id)

    def in_flight(self, runtime_id: str) -> int:
        tracker = self._in_flight.get(runtime_id)
        return tracker.count if tracker else 0

    async def drain(self, runtime_id: str) -> None:
        """Wait until no call is in flight to ``runtime_id`` (bound it with asyncio.timeout)."""
        tracker = self._in_flight.get(runtime_id)
        if tracker is not None:
            await tracker.idle.wait()

    async def aclose(self) -> None:
        """Close every upstream client."""
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def client(self, upstream: Upstream) -> PluginHTTPClient:
        """The one client of ``upstream``'s URL (made on first use; bodies not decoded)."""
        client = self._clients.get(upstream.url)
        if client is None:
            client = http_client(upstream.url, tls=upstream.tls, decode=False)
            self._clients[upstream.url] = client
        return client

    # -- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        runtime_id, authorization, headers = split_credentials(scope["headers"])
        try:
            target = parse_route_path(raw_path_of(scope))
            query = checked_query(scope.get("query_string", b""))
            provider, path, upstream = self.route(target, runtime_id, authorization)
        except ConnectError as error:
            await send_error(scope, send, error.code, error.message)
            return
        tracker = self.tracker(provider)
        tracker.enter()
        telemetry = current_telemetry()  # the router's span: its context travels on
        call = telemetry.route(path[1:], provider, headers) if telemetry is not None else None
        if call is not None:
            headers, send = call.headers, call.observe(send)
        try:
            if upstream.app is not None:  # the query string stays in its own scope key
                child = dict(scope)
                child.update(path=path, raw_path=path.encode(), root_path="", headers=headers)
                await upstream.app(child, receive, send)
            else:
                full = f"{path}?{query}" if query else path
                await self._proxy(scope, receive, send, upstream, full, headers, provider)
        finally:
            tracker.leave()
            if call is not None:
                call.end()

    def tracker(self, provider: str) -> InFlightCalls:
        """The count of calls in flight to ``provider`` (what `drain` waits on)."""
        tracker = self._in_flight.get(provider)
        if tracker is None:
            tracker = self._in_flight[provider] = InFlightCalls()
        return tracker

    def upstream_of(self, target: RouteTarget) -> Upstream | None:
        """Where ``target`` would go, without checking anything; None when that is not
        known yet (`route` then explains why)."""
        provider = self._aliases.get(target.provider, target.provider)
        upstream = self._upstreams.get(provider)
        if upstream is not None:
            return upstream
        return _registered_upstream(self._registry.registration_of(provider, target.service_type))

    def route(
        self, target: RouteTarget, runtime_id: str | None, authorization: str | None
    ) -> tuple[str, str, Upstream]:
        """Check the caller and find the provider: (provider id, path on it, upstream).

        Raises ConnectError: UNAUTHENTICATED, RESOURCE_EXHAUSTED (the caller's rate),
        NOT_FOUND, UNIMPLEMENTED or PERMISSION_DENIED (not a method the provider
        registered), or UNAVAILABLE (an unhealthy provider).
        """

        def get(name: str) -> str | None:
            return runtime_id if name == RUNTIME_ID_HEADER else authorization

        caller = check_credentials(get, self._tokens)
        limiter, rate = self._limiter, self._rate
        if limiter is not None and rate is not None and not limiter.allow(f"id:{caller}|r", rate):
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"rate limit exceeded for routed calls: {rate.rps:g}/s, burst {rate.burst}; "
                "slow down",
            )
        addressed = target.provider
        provider = self._aliases.get(addressed, addressed)
        registration = self._registry.registration_of(provider, target.service_type)
        if registration is None:
            raise ConnectError(
                Code.NOT_FOUND,
                f"provider {addressed!r} not found for service {target.service_type!r}: "
                "discover the service again",
            )
        path = upstream_path(target, registration.endpoint_path, addressed)
        if not self._registry.tracker.routable(provider):
            raise ConnectError(
                Code.UNAVAILABLE, f"provider {addressed!r} is unhealthy; try another provider"
            )
        upstream = self._upstreams.get(provider) or _registered_upstream(registration)
        if upstream is None:
            raise ConnectError(
                Code.NOT_FOUND,
                f"provider endpoint not registered for {addressed!r}: register with "
                "metadata base_url or launch the plugin through the host",
            )
        return provider, path, upstream

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        upstream: Upstream,
        target: str,
        headers: list[tuple[bytes, bytes]],
        provider: str,
    ) -> None:
        relay = Relay(scope, send)
        try:
            client = self.client(upstream)
            buffered = None if is_grpc_request(headers) else client.buffered
            pairs = [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in headers
                # A buffered transport undoes content-encoding itself; asking for none keeps
                # the forwarded body and its headers in agreement.
                if not (buffered is not None and k == b"accept-encoding")
            ]
            content: bytes | AsyncIterator[bytes] | None = None
            method = scope["method"]
            if method not in ("GET", "HEAD"):
                content = await request_body(receive)
            url = client.address + target
            if buffered is not None:
                await self._relay_buffered(buffered, relay, method, url, pairs, content, headers)
            else:
                request_headers = pyqwest.Headers(pairs)
                async with client.stream(method, url, request_headers, content) as response:
                    await relay(response)
        except (
            OSError,
            TimeoutError,
            pyqwest.ReadError,
            pyqwest.WriteError,
            pyqwest.RemoteProtocolError,
        ) as error:
            log.warning("routing to provider %s failed: %s", provider, error)
            if not relay.started:
                await send_error(
                    scope, send, Code.UNAVAILABLE, f"provider {provider!r} is unreachable"
                )
            elif "http.response.trailers" in scope.get("extensions", {}):
                status = str(GRPC_STATUS[Code.UNAVAILABLE]).encode()
                await send(
                    {
                        "type": "http.response.trailers",
                        "headers": [(b"grpc-status", status), (b"grpc-message", b"provider lost")],
                        "more_trailers": False,
                    }
                )
        except Exception:
            # No exception text on the wire: the caller gets INTERNAL, the log the details.
            log.exception("routing to provider %s failed unexpectedly", provider)
            if not relay.started:
                await send_error(scope, send, Code.INTERNAL, "internal error in the host router")

    @staticmethod
    async def _relay_buffered(
        transport: BufferedTransport,
        relay: Relay,
        method: str,
        url: str,
        pairs: list[tuple[str, str]],
        content: bytes | AsyncIterator[bytes] | None,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Relay over a `BufferedTransport`, called without pyqwest's client glue."""
        if isinstance(content, bytes | None) and is_unary(headers):
            # A Connect unary answer is one message: the buffered fast path.
            await relay(await transport.fetch(method, url, pairs, content))
            return
        response = await transport.execute(
            pyqwest.Request(method, url, pyqwest.Headers(pairs), content)
        )
        async with response:
            await relay(response)


def _registered_upstream(registration: Registration | None) -> Upstream | None:
    """Where a registration says its provider is reached (its ``base_url``), if it says."""
    base_url = registration.metadata.get("base_url", "") if registration else ""
    return Upstream(url=base_url.rstrip("/")) if base_url else None
