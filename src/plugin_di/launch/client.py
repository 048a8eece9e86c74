"""The host side of a served plugin: handshake, then dispense typed clients (go-plugin's Client).

The app's client of a plugin process (the plugin side is `plugin_di.plugin.server`);
`plugin_di.launch.process_handle` dispenses through it.

::

    async with PluginClient("http://127.0.0.1:41234", [kv_plugin]) as plugins:
        kv = plugins.dispense(KVServiceClient)      # or plugins.dispense("kv")
        await kv.get(GetRequest(key="a"))

The endpoint's scheme picks the transport (`plugin_di.rpc.transport`):
``http://`` speaks HTTP/1.1 with keep-alive, gRPC calls over HTTP/2 cleartext
(``http_version="h2"`` or an ``http+h2c://`` URL: HTTP/2 for all), ``https://`` TLS,
``unix:///path`` a Unix socket. Compression is off: these channels are local.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from connectrpc.client import ConnectClient
from connectrpc.errors import ConnectError
from connectrpc.interceptor import Interceptor
from connectrpc.protocol import ProtocolType

from plugin_di._version import __version__
from plugin_di.gen.connectplugin.v1 import handshake_pb2 as pb
from plugin_di.gen.connectplugin.v1.handshake_connect import HandshakeServiceClient
from plugin_di.plugin import env
from plugin_di.plugin.definition import Plugin, PluginsLike, Service, as_plugin_set
from plugin_di.rpc.transport import HTTPMode, PluginHTTPClient, connect_client, http_client

if TYPE_CHECKING:
    from plugin_di.rpc.tls import ClientTLS

__all__ = ["PluginClient", "PluginClientError"]

ClientT = TypeVar("ClientT", bound=ConnectClient)


class PluginClientError(RuntimeError):
    """The client is used out of order, or asked for something the plugin does not serve."""


class PluginClient:
    """Connects to a served plugin process, checks the handshake, dispenses typed clients."""

    def __init__(
        self,
        endpoint: str,
        plugins: PluginsLike,
        *,
        magic_cookie_key: str = env.DEFAULT_MAGIC_COOKIE_KEY,
        magic_cookie_value: str = env.DEFAULT_MAGIC_COOKIE_VALUE,
        app_protocol_versions: Sequence[int] = (1,),
        interceptors: Iterable[Interceptor] = (),
        tls: ClientTLS | None = None,
        http_version: HTTPMode | str = HTTPMode.AUTO,
        protocol: ProtocolType = ProtocolType.CONNECT,
        timeout_ms: int | None = None,
        client_metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.plugins = as_plugin_set(plugins)
        self._cookie = (magic_cookie_key, magic_cookie_value)
        self._versions = tuple(app_protocol_versions)
        self._interceptors = list(interceptors)
        self._tls = tls
        self._http_version = http_version
        self._protocol = protocol
        self._timeout_ms = timeout_ms
        self._metadata = {"client_version": __version__, **(client_metadata or {})}
        self._http: PluginHTTPClient | None = None
        self._response: pb.HandshakeResponse | None = None
        self._dispensed: dict[type[ConnectClient], ConnectClient] = {}
        self._closed = False

    @property
    def handshake(self) -> pb.HandshakeResponse:
        """The plugin's handshake response (after `connect`)."""
        if self._response is None:
            raise PluginClientError(f"not connected to {self.endpoint}: await connect() first")
        return self._response

    @property
    def app_protocol_version(self) -> int:
        """The application protocol version both sides agreed on."""
        return int(self.handshake.app_protocol_version)

    async def connect(self) -> pb.HandshakeResponse:
        """Perform the handshake (once); raise ConnectError with the plugin's code on refusal."""
        if self._closed:
            raise PluginClientError(f"client for {self.endpoint} is closed")
        if self._response is not None:
            return self._response
        if self._http is None:
            self._http = http_client(self.endpoint, tls=self._tls, http_version=self._http_version)
        handshake = connect_client(
            HandshakeServiceClient, self.endpoint, self._http, timeout_ms=self._timeout_ms
        )
        request = pb.HandshakeRequest(
            core_protocol_version=env.CORE_PROTOCOL_VERSION,
            app_protocol_version=max(self._versions),
            app_protocol_versions=self._versions,
            magic_cookie_key=self._cookie[0],
            magic_cookie_value=self._cookie[1],
            requested_plugins=sorted(self.plugins),
            client_metadata=self._metadata,
        )
        try:
            response = await handshake.handshake(request)
        except ConnectError as exc:
            raise ConnectError(
                exc.code, f"handshake with plugin at {self.endpoint} failed: {exc.message}"
            ) from None
        self._check(response)
        self._response = response
        return response

    def _check(self, response: pb.HandshakeResponse) -> None:
        if response.core_protocol_version != env.CORE_PROTOCOL_VERSION:
            raise PluginClientError(
                f"plugin at {self.endpoint} speaks core protocol "
                f"{response.core_protocol_version}, this client speaks "
                f"{env.CORE_PROTOCOL_VERSION}"
            )
        if response.app_protocol_version not in self._versions:
            raise PluginClientError(
                f"plugin at {self.endpoint} chose app protocol version "
                f"{response.app_protocol_version}, which this client did not offer "
                f"({list(self._versions)})"
            )
        served = {info.name for info in response.plugins}
        missing = sorted(set(self.plugins) - served)
        if missing:
            raise PluginClientError(
                f"requested plugin(s) {', '.join(missing)} not available on {self.endpoint}"
            )

    def _service(self, target: str | type[ConnectClient]) -> Service[Any]:
        if isinstance(target, str):
            plugin = self.plugins.get(target)
            if plugin is None:
                raise PluginClientError(
                    f"no plugin named {target!r} in this client "
                    f"(it knows: {', '.join(sorted(self.plugins))})"
                )
            if len(plugin.services) > 1:
                names = ", ".join(s.client.__name__ for s in plugin.services)
                raise PluginClientError(
                    f"plugin {target!r} has several services; dispense one of {names}"
                )
            return plugin.services[0]
        for plugin in self.plugins.values():
            for service in plugin.services:
                if service.client is target:
                    return service
        raise PluginClientError(
            f"none of this client's plugins ({', '.join(sorted(self.plugins))}) "
            f"serves {target.__name__}"
        )

    @overload
    def dispense(self, target: type[ClientT]) -> ClientT: ...

    @overload
    def dispense(self, target: str) -> ConnectClient: ...

    def dispense(self, target: str | type[ConnectClient]) -> ConnectClient:
        """The typed generated client of a plugin's service, by plugin name or client class."""
        if self._closed:
            raise PluginClientError(f"client for {self.endpoint} is closed")
        service = self._service(target)
        if self._response is None or self._http is None:
            raise PluginClientError(
                f"dispense({service.client.__name__}) before the handshake with "
                f"{self.endpoint}: await connect() first"
            )
        client = self._dispensed.get(service.client)
        if client is None:
            client = connect_client(
                service.client,
                self.endpoint,
                self._http,
                interceptors=self._interceptors,
                protocol=self._protocol,
                timeout_ms=self._timeout_ms,
            )
            self._dispensed[service.client] = client
        return client

    def plugin(self, name: str) -> Plugin:
        """The declared plugin named ``name``."""
        return self.plugins[name]

    async def close(self) -> None:
        """Close every dispensed client and the HTTP channel. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for client in self._dispensed.values():
            await client.close()
        self._dispensed.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> Self:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
