"""The fx-style lifecycle engine: App, Lifecycle, graph, events, plugin providers.

The public names are listed here; modules whose names start with ``_`` are the machinery
(the build, the start plan, the walks, the run loop, the export). Names are imported on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_di._lazy import lazy_exports

__all__ = [
    "App",
    "CycleError",
    "Emitter",
    "EmitterProvider",
    "Event",
    "GraphError",
    "Hook",
    "HookCancelledError",
    "HookFailure",
    "HookTimeoutError",
    "InMemoryPlugin",
    "InterceptorChainProvider",
    "Lifecycle",
    "LifecycleError",
    "LifecycleProvider",
    "LoggingSink",
    "MissingDependencyError",
    "PluginProvider",
    "ProcessPlugin",
    "ProviderBuildError",
    "ProviderGraph",
    "RemotePlugin",
    "Shutdowner",
    "ShutdownerProvider",
    "StartError",
    "StopError",
    "UnknownProviderError",
    "app_from",
    "app_zygote",
    "installed",
    "placed",
    "plugin_handles",
    "plugins_health",
]

if TYPE_CHECKING:
    from plugin_di.di.app import App, app_from
    from plugin_di.di.errors import (
        CycleError,
        GraphError,
        HookCancelledError,
        HookFailure,
        HookTimeoutError,
        LifecycleError,
        MissingDependencyError,
        ProviderBuildError,
        StartError,
        StopError,
        UnknownProviderError,
    )
    from plugin_di.di.events import Emitter, EmitterProvider, Event, LoggingSink
    from plugin_di.di.graph import ProviderGraph
    from plugin_di.di.lifecycle import Hook, Lifecycle, LifecycleProvider
    from plugin_di.di.providers import (
        InMemoryPlugin,
        InterceptorChainProvider,
        PluginProvider,
        ProcessPlugin,
        RemotePlugin,
        app_zygote,
        installed,
        placed,
        plugin_handles,
        plugins_health,
    )
    from plugin_di.di.shutdown import Shutdowner, ShutdownerProvider

__getattr__ = lazy_exports(
    __name__,
    {
        "plugin_di.di.app": ("App", "app_from"),
        "plugin_di.di.errors": (
            "CycleError",
            "GraphError",
            "HookCancelledError",
            "HookFailure",
            "HookTimeoutError",
            "LifecycleError",
            "MissingDependencyError",
            "ProviderBuildError",
            "StartError",
            "StopError",
            "UnknownProviderError",
        ),
        "plugin_di.di.events": ("Emitter", "EmitterProvider", "Event", "LoggingSink"),
        "plugin_di.di.graph": ("ProviderGraph",),
        "plugin_di.di.lifecycle": ("Hook", "Lifecycle", "LifecycleProvider"),
        "plugin_di.di.providers": (
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
        ),
        "plugin_di.di.shutdown": ("Shutdowner", "ShutdownerProvider"),
    },
)
