"""Plugins as dependency-injector providers: in memory, in a child process, or remote.

A plugin provider is a ``Singleton`` of a plugin handle. The handle has
``start()``/``stop()``, so the lifecycle engine gives it hooks: it starts before
everything that depends on it and stops after. ``.client(ClientClass)`` is a
sub-provider of the typed client; dependents depend on that, so their code and
types stay the same when the plugin moves::

    class AppContainer(containers.DeclarativeContainer):
        events = EmitterProvider()
        kv = ProcessPlugin(kv_plugin, module="examples.kv", events=events)
        # kv = InMemoryPlugin(kv_plugin)                      # the one-line move
        # kv = RemotePlugin(kv_plugin, "http://10.0.0.5:8080")
        store = providers.Singleton(Store, kv=kv.client(KVServiceClient))

A plugin serving several services is started once; each ``client(...)`` of it
shares the one handle. ``events`` (an `EmitterProvider`) sends plugin events to
the app's sinks; without it they go to the ``plugin_di`` logger.

Interceptors: every client a plugin provider builds gets one configured
`InterceptorChain` (``chain=``: a chain or a provider of one; default
``InterceptorChain()``: retry and circuit breaker on, no credentials). Declare one
container-wide with `InterceptorChainProvider` and pass it to each plugin; each plugin
still gets its own breakers. Client order, outermost first: the provider's
``interceptors``, then the chain's (its extras, credentials, breaker, retry), then, for
process plugins, the launch secret. In-memory plugins also run the chain's server
interceptors. Breaker changes are `BreakerStateChanged` events; health is DEGRADED
while a breaker is open::

    class AppContainer(containers.DeclarativeContainer):
        events = EmitterProvider()
        chain = InterceptorChainProvider(InterceptorChain(retry=RetryPolicy(max_attempts=5)))
        kv = ProcessPlugin(kv_plugin, module="examples.kv", events=events, chain=chain)

A process plugin takes what differs from the defaults as two typed objects,
`LaunchOptions` (how each process starts) and `Supervision` (checks and restarts)::

    kv = ProcessPlugin(
        kv_plugin,
        module="examples.kv",
        launch=LaunchOptions(auto_mtls=True, zygote=False),
        supervision=Supervision(restart=RestartPolicy.ALWAYS, backoff=Backoff(base=1.0)),
    )
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from connectrpc.interceptor import Interceptor

from plugin_di.di._plugin import (
    ChainArg,
    EventsArg,
    InterceptorChainProvider,
    Kept,
    PluginProvider,
    chain_arg,
    make_handle,
)
from plugin_di.di._process import ProcessPlugin, app_zygote, process_command
from plugin_di.launch.discovery import find
from plugin_di.launch.events import PluginHealth
from plugin_di.launch.handle import PluginHandle
from plugin_di.launch.inmemory import InMemoryHandle
from plugin_di.launch.remote import RemoteHandle
from plugin_di.plugin.definition import Plugin
from plugin_di.plugin.inprocess import Mode

if TYPE_CHECKING:  # rpc.tls loads cryptography; only https remotes need it
    from plugin_di.rpc.tls import ClientTLS

__all__ = [
    "InMemoryPlugin",
    "InterceptorChainProvider",
    "PluginProvider",
    "ProcessPlugin",
    "RemotePlugin",
    "app_zygote",
    "installed",
    "placed",
    "plugin_handles",
    "plugins_health",
    "process_command",
]

Placement = Literal["in-memory", "process", "remote"]


class InMemoryPlugin(PluginProvider[InMemoryHandle]):
    """The plugin's implementation in this process: ``direct`` dispatch or in-process ``asgi``.

    ``chain``'s client interceptors wrap the clients and its server interceptors (then
    ``server_interceptors``) run on the server side.
    """

    def __init__(
        self,
        plugin: Plugin | None = None,
        *,
        mode: Mode = "direct",
        interceptors: Iterable[Interceptor] = (),
        server_interceptors: Iterable[Interceptor] = (),
        chain: ChainArg = None,
        events: EventsArg = None,
    ) -> None:
        if plugin is None:  # dependency-injector copies providers by calling cls()
            super().__init__()
            return
        make = partial(
            InMemoryHandle,
            plugin,
            mode=mode,
            interceptors=tuple(interceptors),
            server_interceptors=tuple(server_interceptors),
        )
        super().__init__(make_handle, Kept(make), events=events, chain=chain_arg(chain))


class RemotePlugin(PluginProvider[RemoteHandle]):
    """A plugin already running at ``url``; ``check`` asks its health when the app starts.

    ``tls`` (`plugin_di.rpc.tls.ClientTLS`) for ``https://`` URLs: CA and client certificate.
    ``chain``: the clients' interceptors; its breaker is keyed by ``url``, and credentials
    are refused over plaintext to a non-loopback ``url`` (see `InterceptorChain`).
    """

    def __init__(
        self,
        plugin: Plugin | None = None,
        url: str = "",
        *,
        check: bool = True,
        tls: ClientTLS | None = None,
        interceptors: Iterable[Interceptor] = (),
        chain: ChainArg = None,
        events: EventsArg = None,
    ) -> None:
        if plugin is None:
            super().__init__()
            return
        if not url:
            raise ValueError(f"RemotePlugin({plugin.name!r}) needs the plugin's url")
        make = partial(
            RemoteHandle, plugin, url, check=check, tls=tls, interceptors=tuple(interceptors)
        )
        super().__init__(make_handle, Kept(make), events=events, chain=chain_arg(chain))


def placed(plugin: Plugin, placement: Placement | str, **options: Any) -> PluginProvider[Any]:
    """The provider for ``placement``, so a setting can choose it::

    kv = placed(kv_plugin, os.environ.get("KV_PLACEMENT", "process"),
                module="examples.kv", url=os.environ.get("KV_URL", ""))

    Options that do not apply to the chosen placement are ignored.
    """
    common = {k: options[k] for k in ("interceptors", "events", "chain") if k in options}
    if placement == "in-memory":
        extra = {k: options[k] for k in ("mode", "server_interceptors") if k in options}
        return InMemoryPlugin(plugin, **common, **extra)
    if placement == "process":
        skip = {"mode", "server_interceptors", "url", "check", "tls"}
        return ProcessPlugin(plugin, **{k: v for k, v in options.items() if k not in skip})
    if placement == "remote":
        check = bool(options.get("check", True))
        url, tls = options.get("url", ""), options.get("tls")
        return RemotePlugin(plugin, url, check=check, tls=tls, **common)
    raise ValueError(
        f"unknown placement {placement!r} for plugin {plugin.name!r}: "
        "use 'in-memory', 'process' or 'remote'"
    )


def installed(
    name: str, placement: Placement | str = "process", **options: Any
) -> PluginProvider[Any]:
    """The provider of a plugin installed as a package (entry-point group ``plugin_di.plugins``).

    In a process it runs as ``python -m plugin_di serve MODULE:ATTR``; in memory
    the entry point's `Plugin` is used directly. ``options`` as for `placed`.
    """
    found = find(name)
    if placement == "process" and "command" not in options and "module" not in options:
        options = {**options, "command": found.command}
    return placed(found.load(), placement, **options)


def plugin_handles(container: Any) -> dict[str, PluginHandle]:
    """The handles of every plugin provider declared in ``container`` (built on demand)."""
    found: dict[str, PluginHandle] = {}
    for provider in container.traverse(types=[PluginProvider]):
        handle = provider()
        found[handle.name] = handle
    return found


async def plugins_health(container: Any) -> dict[str, PluginHealth]:
    """Health of every plugin of ``container``, by plugin name."""
    return {name: await h.health() for name, h in plugin_handles(container).items()}
