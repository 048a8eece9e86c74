"""`ProcessPlugin`: the plugin in a supervised child process, and the app's zygote it forks from.

The provider's factory builds a `ProcessHandle` from what the plugin declares
(`LaunchOptions`, `Supervision`) and what the App building it supplies through inline
markers: its `Settings` (the defaults of the open timeouts) and its `Lifecycle`, through
which every ``python -m`` plugin of the app shares one warm zygote (``Lifecycle.shared``,
node ``<zygote>``). Built by no App, a plugin takes the environment's settings and is
spawned.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from connectrpc.interceptor import Interceptor
from dependency_injector import providers

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.di._markers import AppLifecycle, AppSettings
from plugin_di.di._plugin import ChainArg, EventsArg, Kept, PluginProvider, chain_arg
from plugin_di.di.app import App
from plugin_di.di.events import Emitter
from plugin_di.di.lifecycle import Hook, Lifecycle
from plugin_di.di.providers_events import emit_to
from plugin_di.launch.config import (
    DEFAULT_SUPERVISION,
    LaunchAdmission,
    LaunchOptions,
    Supervision,
)
from plugin_di.launch.config import app_zygote as new_app_zygote
from plugin_di.launch.process_handle import ProcessHandle
from plugin_di.plugin.definition import Plugin
from plugin_di.rpc.interceptors import InterceptorChain
from plugin_di.settings import Settings

if TYPE_CHECKING:
    from plugin_di.launch.zygote import SharedZygote, Zygote

ZYGOTE = "zygote"
"""The name the app's zygote is shared under in its Lifecycle (its node: ``<zygote>``)."""


def process_command(module: str | None, command: Sequence[str] | None) -> list[str]:
    """``command`` as given, or ``[sys.executable, "-m", module]``."""
    if command:
        return list(command)
    if module:
        return [sys.executable, "-m", module]
    raise ValueError("ProcessPlugin needs module= (run with python -m) or command=[...]")


@dataclass(frozen=True)
class _ProcessSpec:
    """What a `ProcessPlugin` declares; the rest comes from the app when it is built."""

    plugin: Plugin
    command: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None
    launch: LaunchOptions
    supervision: Supervision
    clock: Clock
    interceptors: tuple[Interceptor, ...]


def _process(
    kept: Kept[_ProcessSpec],
    lifecycle: Lifecycle | None = None,
    app_settings: Settings | None = None,
    settings: Settings | None = None,
    events: Emitter | None = None,
    host_url: str | None = None,
    chain: InterceptorChain | None = None,
    host: Any = None,
) -> ProcessHandle:
    spec = kept.value
    plugin = spec.plugin
    admission: LaunchAdmission | None = None
    provides: tuple[str, ...] = ()
    if host is not None:  # a Host in this process admits the plugin by its launch secret
        host_url = host_url or host.local_url or host.url
        admission = host.admission
        provides = tuple(s.service_type for s in plugin.services)
    if settings is None:  # the app's, else the environment's
        # (**{}): without pydantic's mypy plugin, mypy thinks every field is required
        settings = app_settings if app_settings is not None else Settings(**{})
    config = spec.launch.config(
        plugin.name,
        spec.command,
        settings=settings,
        protocol_versions=plugin.app_protocol_versions,
        env=spec.env,
        cwd=spec.cwd,
        host_url=host_url,
        admission=admission,
        provides=provides,
        zygote=_forks_from(spec, lifecycle, app_settings),
    )
    return ProcessHandle(
        plugin,
        config,
        supervision=spec.supervision,
        clock=spec.clock,
        interceptors=spec.interceptors,
        chain=chain,
        emit=emit_to(events),
    )


def _forks_from(
    spec: _ProcessSpec, lifecycle: Lifecycle | None, settings: Settings | None
) -> Zygote | SharedZygote | None:
    """The zygote the plugin forks from: the one it names, else, for a ``python -m`` plugin
    an App builds, the app's (the plugin then needs its node); None: it is spawned."""
    chosen = spec.launch.zygote
    if chosen is not True:
        return chosen or None
    if lifecycle is None or lifecycle.owner is None or settings is None or not settings.zygote:
        return None
    if not _forkable(spec.command):
        return None
    zygote = lifecycle.shared(ZYGOTE, partial(new_app_zygote, settings), _zygote_hook)
    if not spec.supervision.checksum:  # a checksummed plugin's code is read at each launch
        zygote.want(spec.command, cwd=spec.cwd, env=spec.env)
    return zygote


def _zygote_hook(zygote: SharedZygote) -> Hook:
    """Start the zygote (never fails: plugins are spawned then); stop it, always."""
    return Hook(on_start=zygote.start, on_stop=zygote.aclose, name="zygote", always_stop=True)


def _forkable(command: Sequence[str]) -> bool:
    """``[this interpreter, "-m", MODULE, ...]``: what a zygote can fork."""
    return (
        len(command) >= 3
        and command[1] == "-m"
        and os.path.abspath(command[0]) == os.path.abspath(sys.executable)
    )


def app_zygote(app: App) -> SharedZygote | None:
    """The warm zygote ``app``'s process plugins fork from; None while none of them does."""
    from plugin_di.launch.zygote import SharedZygote

    found = app.lifecycle.find_shared(ZYGOTE)
    return found if isinstance(found, SharedZygote) else None


class ProcessPlugin(PluginProvider[ProcessHandle]):
    """The plugin in a supervised child process, launched by the lifecycle engine.

    ``module`` runs ``python -m module``; ``command`` runs any command line that
    serves a plugin (it must print the handshake line), with ``env`` over the host's
    environment, in ``cwd``. ``launch`` (`LaunchOptions`): timeouts, Unix socket or TCP,
    auto mTLS, auth, zygote, join token, protocol versions; its open timeouts come from
    ``settings`` (default: the app's, else the environment's). ``supervision``
    (`Supervision`): checksum and handshake check of each launch, restart policy, backoff
    and crash loop, on ``clock``. ``chain`` and ``interceptors``: the clients'.

    ``host_url`` (a string or a provider of one, e.g. ``host.provided.url`` with
    ``host = providers.Singleton(Host, bind="127.0.0.1:0")``, which knows its URL before it
    starts) is passed to the child as ``PLUGIN_DI_HOST_URL``; depending on a provider also
    orders the start: the plugin starts after it.

    ``host`` (a provider of a `plugin_di.host.server.Host` in this process) joins the
    plugin to that host (at ``host_url`` if given, else its ``local_url`` or ``url``) and
    admits it by its launch secret to provide the service types its definition declares;
    a host elsewhere admits it by ``LaunchOptions.join_token`` (docs/security.md#admission).

    In an `App` (with ``Settings.zygote`` on, the default), a ``python -m`` plugin is
    forked from the app's warm zygote (`plugin_di.launch.zygote.SharedZygote`, see
    `app_zygote`), which the app starts before its first such plugin and stops after the
    last; ``LaunchOptions(zygote=False)`` spawns it. Other commands, and plugins built
    outside an App, are spawned.
    """

    def __init__(
        self,
        plugin: Plugin | None = None,
        *,
        module: str | None = None,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        launch: LaunchOptions | None = None,
        supervision: Supervision = DEFAULT_SUPERVISION,
        host_url: str | providers.Provider[str] | None = None,
        host: providers.Provider[Any] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        interceptors: Iterable[Interceptor] = (),
        chain: ChainArg = None,
        settings: Settings | providers.Provider[Settings] | None = None,
        events: EventsArg = None,
    ) -> None:
        if plugin is None:
            super().__init__()
            return
        spec = _ProcessSpec(
            plugin=plugin,
            command=tuple(process_command(module, command)),
            env=dict(env or {}),
            cwd=cwd,
            launch=launch if launch is not None else LaunchOptions(),
            supervision=supervision,
            clock=clock,
            interceptors=tuple(interceptors),
        )
        super().__init__(
            _process,
            Kept(spec),
            lifecycle=AppLifecycle(),
            app_settings=AppSettings(),
            settings=settings,
            events=events,
            host_url=host_url,
            chain=chain_arg(chain),
            host=host,
        )
