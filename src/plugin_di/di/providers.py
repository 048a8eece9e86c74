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
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from connectrpc.interceptor import Interceptor
from dependency_injector import providers

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.di import _zygote
from plugin_di.di.events import Emitter
from plugin_di.di.providers_events import emit_to
from plugin_di.launch.discovery import find
from plugin_di.launch.events import PluginHealth
from plugin_di.launch.handle import ClientT, PluginHandle
from plugin_di.launch.inmemory import InMemoryHandle
from plugin_di.launch.process import LaunchConfig
from plugin_di.launch.process_handle import ProcessHandle
from plugin_di.launch.remote import RemoteHandle
from plugin_di.launch.supervisor import (
    DEFAULT_BACKOFF,
    DEFAULT_CRASH_LOOP,
    Backoff,
    CrashLoop,
    RestartPolicy,
)
from plugin_di.plugin.definition import Plugin
from plugin_di.plugin.inprocess import Mode
from plugin_di.rpc.interceptors import InterceptorChain
from plugin_di.settings import Settings

if TYPE_CHECKING:  # rpc.tls loads cryptography; only https remotes need it
    from plugin_di.launch.zygote import Zygote
    from plugin_di.rpc.tls import ClientTLS

HandleT = TypeVar("HandleT", bound=PluginHandle)
Placement = Literal["in-memory", "process", "remote"]
EventsArg = providers.Provider[Emitter] | Emitter | None
ChainArg = providers.Provider[InterceptorChain] | InterceptorChain | None


class InterceptorChainProvider(providers.Dependency[InterceptorChain]):
    """A container-wide `InterceptorChain` for the plugin providers (``chain=``).

    ``InterceptorChainProvider()`` yields ``InterceptorChain()`` unless overridden
    (``container.chain.override(InterceptorChain(...))``); pass a chain to set the default.
    """

    def __init__(self, default: InterceptorChain | None = None) -> None:
        chain = default if default is not None else InterceptorChain()
        super().__init__(instance_of=InterceptorChain, default=_kept(chain))


class _Shared:
    """Arguments a container copy must share, not copy (the plugin and its implementation)."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


def _value(shared: _Shared) -> Any:
    return shared.values["value"]


def _kept(value: Any) -> providers.Provider[Any]:
    """A provider of ``value`` itself: containers deep-copy plain arguments, but a chain's
    limiter, clock and interceptors must stay the objects the user made."""
    return providers.Callable(_value, _Shared(value=value))


def _chain_arg(chain: ChainArg) -> ChainArg:
    if chain is None or isinstance(chain, providers.Provider):
        return chain
    return _kept(chain)


def _client_of(handle: PluginHandle, client_cls: type[ClientT]) -> ClientT:
    return handle.client(client_cls)


class PluginProvider(providers.Singleton[HandleT]):
    """Base of the plugin providers: a Singleton of a `PluginHandle`."""

    def client(self, client_cls: type[ClientT]) -> providers.Singleton[ClientT]:
        """A provider of the plugin's typed client for ``client_cls``.

        Every call for the same class yields the same client object (the handle
        keeps one per class), which stays valid across restarts of the plugin.
        """
        provider: providers.Singleton[ClientT] = providers.Singleton(_client_of, self, client_cls)
        return provider


def _wire(handle: HandleT, events: Emitter | None) -> HandleT:
    handle.set_emit(emit_to(events))
    return handle


def _in_memory(
    spec: _Shared, events: Emitter | None = None, chain: InterceptorChain | None = None
) -> InMemoryHandle:
    return _wire(InMemoryHandle(**spec.values, chain=chain), events)


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
        spec = _Shared(
            plugin=plugin,
            mode=mode,
            interceptors=tuple(interceptors),
            server_interceptors=tuple(server_interceptors),
        )
        super().__init__(_in_memory, spec, events=events, chain=_chain_arg(chain))


def process_command(module: str | None, command: Sequence[str] | None) -> list[str]:
    """``command`` as given, or ``[sys.executable, "-m", module]``."""
    if command:
        return list(command)
    if module:
        return [sys.executable, "-m", module]
    raise ValueError("ProcessPlugin needs module= (run with python -m) or command=[...]")


def _process(
    spec: _Shared,
    settings: Settings | None = None,
    events: Emitter | None = None,
    host_url: str | None = None,
    chain: InterceptorChain | None = None,
    host: Any = None,
) -> ProcessHandle:
    plugin: Plugin = spec.values["plugin"]
    supervise: Mapping[str, Any] = spec.values["supervise"]
    options = dict(spec.values["launch"])
    if host is not None:  # a Host in this process admits the plugin by its launch secret
        host_url = host_url or host.fast_url or host.url
        options["admission"] = host.admission
        options["provides"] = tuple(s.service_type for s in plugin.services)
    options["host_url"] = host_url
    if options["require_auth"] is None:  # a host's router calls the plugin with its own tokens
        options["require_auth"] = not host_url
    app_zygote = _zygote.current()
    if options.get("start_timeout") is None or options.get("shutdown_grace") is None:
        if settings is None:  # the app's, else the environment's
            # (**{}): without pydantic's mypy plugin, mypy thinks every field is required
            settings = app_zygote.settings if app_zygote is not None else Settings(**{})
        if options.get("start_timeout") is None:
            options["start_timeout"] = settings.plugin_start_timeout
        if options.get("shutdown_grace") is None:
            options["shutdown_grace"] = settings.shutdown_grace
    if options["zygote"] is True:
        options["zygote"] = None
        if app_zygote is not None and app_zygote.enabled and _forkable(options["command"]):
            options["zygote"] = app_zygote.adopt(
                options["command"],
                cwd=options["cwd"],
                env=options["env"],
                preload=not supervise["checksum"],
            )
    elif options["zygote"] is False:
        options["zygote"] = None
    config = LaunchConfig(name=plugin.name, **options)
    return _wire(ProcessHandle(plugin, config, **supervise, chain=chain), events)


def _forkable(command: Sequence[str]) -> bool:
    """``[this interpreter, "-m", MODULE, ...]``: what a zygote can fork."""
    return (
        len(command) >= 3
        and command[1] == "-m"
        and os.path.abspath(command[0]) == os.path.abspath(sys.executable)
    )


class ProcessPlugin(PluginProvider[ProcessHandle]):
    """The plugin in a supervised child process, launched by the lifecycle engine.

    ``module`` runs ``python -m module``; ``command`` runs any command line that
    serves a plugin (it must print the handshake line). ``start_timeout`` and
    ``shutdown_grace`` default to the `Settings` (``plugin_start_timeout``,
    ``shutdown_grace``). ``restart``: ``never``, ``on-failure`` or ``always``;
    ``checksum``: the expected SHA-256 of the module file or executable;
    ``verify``: check the plugin's HandshakeService after each launch.
    ``unix_socket`` (default): the plugin serves on a private Unix socket, called over
    HTTP/1.1 (the fastest channel); ``False``: on 127.0.0.1 TCP. Either serves every
    protocol (HTTP/2 and gRPC too).
    ``host_url`` (a string or a provider of one, e.g. ``host.provided.url`` with
    ``host = providers.Singleton(Host, bind="127.0.0.1:0")``, which knows its URL before it
    starts) is passed to the child as ``PLUGIN_DI_HOST_URL``; depending on a provider also
    orders the start: the plugin starts after it. ``chain``: the clients' interceptors.

    ``host`` (a provider of a `plugin_di.host.server.Host` in this process) joins the
    plugin to that host (at ``host_url`` if given, else its ``fast_url`` or ``url``) and
    admits it by its launch secret to provide the service types its definition declares;
    a host elsewhere admits it by ``join_token`` (see docs/security.md#admission).

    ``auto_mtls`` (off by default: a launched plugin already accepts only calls carrying
    its launch secret, on a 0600 Unix socket or loopback, and TLS costs each start a key
    pair and the unencrypted short path): the launcher makes an ephemeral host certificate,
    the plugin its own; each side trusts only the other's, so no other client can call the
    plugin. The plugin then serves TCP with TLS even with ``unix_socket``.
    ``require_auth``: the plugin accepts only calls carrying this launch's secret
    (`plugin_di.plugin.security`); default on, except with ``host_url`` (a host's router
    calls the plugin too).

    ``zygote``: in an `App` (with ``Settings.zygote`` on, the default), a ``python -m``
    plugin is forked from the app's warm zygote (`plugin_di.launch.shared_zygote`), which
    the app starts before its first such plugin and stops after the last; ``False``
    spawns it; a started `plugin_di.launch.zygote.Zygote` forks it from that one. Other
    commands, and plugins built outside an App, are spawned.
    """

    def __init__(
        self,
        plugin: Plugin | None = None,
        *,
        module: str | None = None,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        restart: RestartPolicy | str = RestartPolicy.ON_FAILURE,
        backoff: Backoff = DEFAULT_BACKOFF,
        crash_loop: CrashLoop = DEFAULT_CRASH_LOOP,
        checksum: str | None = None,
        verify: bool = True,
        start_timeout: float | None = None,
        shutdown_grace: float | None = None,
        kill_timeout: float = 2.0,
        unix_socket: bool = True,
        auto_mtls: bool = False,
        require_auth: bool | None = None,
        zygote: Zygote | bool = True,
        host_url: str | providers.Provider[str] | None = None,
        host: providers.Provider[Any] | None = None,
        join_token: str | None = None,
        protocol_versions: Sequence[int] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        interceptors: Iterable[Interceptor] = (),
        chain: ChainArg = None,
        settings: Settings | providers.Provider[Settings] | None = None,
        events: EventsArg = None,
    ) -> None:
        if plugin is None:
            super().__init__()
            return
        launch = {
            "command": tuple(process_command(module, command)),
            "env": dict(env or {}),
            "cwd": cwd,
            "start_timeout": start_timeout,
            "shutdown_grace": shutdown_grace,
            "kill_timeout": kill_timeout,
            "unix_socket": unix_socket,
            "auto_mtls": auto_mtls,
            "require_auth": require_auth,
            "zygote": zygote,
            "protocol_versions": tuple(protocol_versions or plugin.app_protocol_versions),
            "join_token": join_token,
        }
        supervise = {
            "restart": RestartPolicy(restart),
            "backoff": backoff,
            "crash_loop": crash_loop,
            "checksum": checksum,
            "verify": verify,
            "clock": clock,
            "interceptors": tuple(interceptors),
        }
        spec = _Shared(plugin=plugin, launch=launch, supervise=supervise)
        super().__init__(
            _process,
            spec,
            settings=settings,
            events=events,
            host_url=host_url,
            chain=_chain_arg(chain),
            host=host,
        )


def _remote(
    spec: _Shared, events: Emitter | None = None, chain: InterceptorChain | None = None
) -> RemoteHandle:
    return _wire(RemoteHandle(**spec.values, chain=chain), events)


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
        spec = _Shared(
            plugin=plugin, url=url, check=check, tls=tls, interceptors=tuple(interceptors)
        )
        super().__init__(_remote, spec, events=events, chain=_chain_arg(chain))


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
