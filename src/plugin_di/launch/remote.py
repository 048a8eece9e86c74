"""Remote placement: the plugin already runs elsewhere, at a URL; nothing is launched."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from connectrpc.interceptor import Interceptor

from plugin_di.launch._control import remote_health
from plugin_di.launch._endpoint import EndpointClient, Target, close_target, target_for
from plugin_di.launch.events import (
    EmitFn,
    HealthState,
    PluginHealth,
    PluginStarted,
    PluginStopped,
    discard,
)
from plugin_di.launch.handle import ClientT, PluginHandle
from plugin_di.plugin.definition import Plugin
from plugin_di.rpc.interceptors import InterceptorChain

if TYPE_CHECKING:
    from plugin_di.rpc.tls import ClientTLS


class PluginUnreachableError(ConnectionError):
    """A remote plugin did not answer when the app started."""


class RemoteHandle(PluginHandle):
    """Clients call ``url``. ``start()`` binds it and, with ``check``, asks the plugin's health.

    ``http://`` is spoken in HTTP/1.1 with keep-alive (gRPC-protocol clients over h2c), so a
    connect-plugin-go plugin, or any net/http server, is reachable as it is.

    ``tls`` (`plugin_di.rpc.tls.ClientTLS`): the CA to trust and, for mTLS, the client
    certificate, for ``https://`` URLs.
    """

    placement = "remote"

    def __init__(
        self,
        plugin: Plugin,
        url: str,
        *,
        check: bool = True,
        tls: ClientTLS | None = None,
        interceptors: Iterable[Interceptor] = (),
        chain: InterceptorChain | None = None,
        emit: EmitFn = discard,
        target_factory: Callable[..., Target] = target_for,
    ) -> None:
        super().__init__(plugin, interceptors=interceptors, chain=chain, emit=emit)
        self._url = url
        self.check = check
        self.client_interceptors()  # refuses credentials in plaintext to a remote address now
        # the handle's own calls (health) carry the chain's credentials too
        self.endpoint = EndpointClient(plugin.name, auth=self.credential_interceptors())
        self._target_factory = target_factory
        self.tls = tls

    @property
    def url(self) -> str:
        return self._url

    @property
    def breaker_key(self) -> str:
        return self._url

    def _client(self, client_cls: type[ClientT]) -> ClientT:
        return self.endpoint.client(client_cls, interceptors=self.client_interceptors())

    async def start(self) -> None:
        self.endpoint.bind(self._target_factory(self._url, tls=self.tls))
        if self.check:
            health = await remote_health(self.endpoint)
            if health.state is HealthState.UNHEALTHY:
                await close_target(self.endpoint.unbind("unreachable at start"))
                raise PluginUnreachableError(
                    f"remote plugin {self.name!r} at {self._url} is not usable: {health.reason}; "
                    "check that it runs and the URL is right, or pass check=False"
                )
        self.emit(PluginStarted(self.name, url=self._url, placement=self.placement))

    async def stop(self) -> None:
        previous = self.endpoint.unbind("stopped")
        if previous is not None:
            await close_target(previous)
            self.emit(PluginStopped(self.name))

    async def health(self) -> PluginHealth:
        if self.endpoint.target is None:
            return PluginHealth(HealthState.UNHEALTHY, "not started")
        return self.with_breakers(await remote_health(self.endpoint))
