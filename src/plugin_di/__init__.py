"""plugin-di: fx-style lifecycles for dependency-injector containers, and plugins over Connect RPC.

Names are imported lazily, so a plugin process that only serves never pays for
the lifecycle engine, networkx or the host platform.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from plugin_di._version import __version__ as __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # lifecycle engine
    "App": "plugin_di.di.app",
    "Lifecycle": "plugin_di.di.lifecycle",
    "Hook": "plugin_di.di.lifecycle",
    "LifecycleProvider": "plugin_di.di.lifecycle",
    "Shutdowner": "plugin_di.di.shutdown",
    "ShutdownerProvider": "plugin_di.di.shutdown",
    "EmitterProvider": "plugin_di.di.events",
    # plugins as providers
    "InMemoryPlugin": "plugin_di.di.providers",
    "ProcessPlugin": "plugin_di.di.providers",
    "RemotePlugin": "plugin_di.di.providers",
    "InterceptorChainProvider": "plugin_di.di.providers",
    "LaunchOptions": "plugin_di.launch.config",
    "Supervision": "plugin_di.launch.config",
    "RestartPolicy": "plugin_di.launch.config",
    "Backoff": "plugin_di.launch.config",
    "CrashLoop": "plugin_di.launch.config",
    "Host": "plugin_di.host.server",
    "Settings": "plugin_di.settings",
    # plugins
    "Plugin": "plugin_di.plugin.definition",
    "PluginSet": "plugin_di.plugin.definition",
    "Service": "plugin_di.plugin.definition",
    "Dependency": "plugin_di.plugin.definition",
    "serve": "plugin_di.plugin.server",
    "PluginClient": "plugin_di.launch.client",
    "inprocess_client": "plugin_di.plugin.inprocess",
    "HealthState": "plugin_di.plugin.health",
    # client and server interceptors
    "InterceptorChain": "plugin_di.rpc.interceptors",
    "RetryPolicy": "plugin_di.rpc.interceptors",
    "BreakerConfig": "plugin_di.rpc.interceptors",
    "RateLimitPolicy": "plugin_di.rpc.interceptors",
    "Rate": "plugin_di.rpc.interceptors",
    "RuntimeCredentials": "plugin_di.rpc.interceptors",
    # time
    "Clock": "plugin_di.clock",
    "SystemClock": "plugin_di.clock",
    "FakeClock": "plugin_di.clock",
}

__all__ = [
    "App",
    "Backoff",
    "BreakerConfig",
    "Clock",
    "CrashLoop",
    "Dependency",
    "EmitterProvider",
    "FakeClock",
    "HealthState",
    "Hook",
    "Host",
    "InMemoryPlugin",
    "InterceptorChain",
    "InterceptorChainProvider",
    "LaunchOptions",
    "Lifecycle",
    "LifecycleProvider",
    "Plugin",
    "PluginClient",
    "PluginSet",
    "ProcessPlugin",
    "Rate",
    "RateLimitPolicy",
    "RemotePlugin",
    "RestartPolicy",
    "RetryPolicy",
    "RuntimeCredentials",
    "Service",
    "Settings",
    "Shutdowner",
    "ShutdownerProvider",
    "Supervision",
    "SystemClock",
    "inprocess_client",
    "serve",
]

if TYPE_CHECKING:
    from plugin_di.clock import Clock, FakeClock, SystemClock
    from plugin_di.di.app import App
    from plugin_di.di.events import EmitterProvider
    from plugin_di.di.lifecycle import Hook, Lifecycle, LifecycleProvider
    from plugin_di.di.providers import (
        InMemoryPlugin,
        InterceptorChainProvider,
        ProcessPlugin,
        RemotePlugin,
    )
    from plugin_di.di.shutdown import Shutdowner, ShutdownerProvider
    from plugin_di.host.server import Host
    from plugin_di.launch.client import PluginClient
    from plugin_di.launch.config import (
        Backoff,
        CrashLoop,
        LaunchOptions,
        RestartPolicy,
        Supervision,
    )
    from plugin_di.plugin.definition import Dependency, Plugin, PluginSet, Service
    from plugin_di.plugin.health import HealthState
    from plugin_di.plugin.inprocess import inprocess_client
    from plugin_di.plugin.server import serve
    from plugin_di.rpc.interceptors import (
        BreakerConfig,
        InterceptorChain,
        Rate,
        RateLimitPolicy,
        RetryPolicy,
        RuntimeCredentials,
    )
    from plugin_di.settings import Settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plugin_di' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
