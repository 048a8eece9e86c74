"""The launcher: plugin handles in memory, in a supervised child process, or remote.

The public names are listed here; modules whose names start with ``_`` are the machinery
(the endpoint behind a handle's clients, the control calls, log forwarding). The zygote is
its own package, `plugin_di.launch.zygote`. Names are imported on first use, so a process
that imports one module (the zygote, a plugin) loads only that one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_di._lazy import lazy_exports

__all__ = [
    "Backoff",
    "ChecksumMismatchError",
    "CrashLoop",
    "DiscoveredPlugin",
    "DiscoveryError",
    "InMemoryHandle",
    "LaunchConfig",
    "LaunchOptions",
    "PluginClient",
    "PluginClientError",
    "PluginEvent",
    "PluginHandle",
    "PluginHealth",
    "PluginProcess",
    "PluginStartError",
    "PluginUnreachableError",
    "ProcessHandle",
    "RemoteHandle",
    "RestartPolicy",
    "Supervision",
    "Supervisor",
    "SupervisorState",
    "discover",
    "find",
    "sha256_file",
]

if TYPE_CHECKING:
    from plugin_di.launch.checksum import ChecksumMismatchError, sha256_file
    from plugin_di.launch.client import PluginClient, PluginClientError
    from plugin_di.launch.config import (
        Backoff,
        CrashLoop,
        LaunchConfig,
        LaunchOptions,
        RestartPolicy,
        Supervision,
    )
    from plugin_di.launch.discovery import DiscoveredPlugin, DiscoveryError, discover, find
    from plugin_di.launch.events import PluginEvent, PluginHealth
    from plugin_di.launch.failures import PluginStartError
    from plugin_di.launch.handle import PluginHandle
    from plugin_di.launch.inmemory import InMemoryHandle
    from plugin_di.launch.process import PluginProcess
    from plugin_di.launch.process_handle import ProcessHandle
    from plugin_di.launch.remote import PluginUnreachableError, RemoteHandle
    from plugin_di.launch.supervisor import Supervisor, SupervisorState

__getattr__ = lazy_exports(
    __name__,
    {
        "plugin_di.launch.checksum": ("ChecksumMismatchError", "sha256_file"),
        "plugin_di.launch.client": ("PluginClient", "PluginClientError"),
        "plugin_di.launch.config": (
            "Backoff",
            "CrashLoop",
            "LaunchConfig",
            "LaunchOptions",
            "RestartPolicy",
            "Supervision",
        ),
        "plugin_di.launch.discovery": ("DiscoveredPlugin", "DiscoveryError", "discover", "find"),
        "plugin_di.launch.events": ("PluginEvent", "PluginHealth"),
        "plugin_di.launch.failures": ("PluginStartError",),
        "plugin_di.launch.handle": ("PluginHandle",),
        "plugin_di.launch.inmemory": ("InMemoryHandle",),
        "plugin_di.launch.process": ("PluginProcess",),
        "plugin_di.launch.process_handle": ("ProcessHandle",),
        "plugin_di.launch.remote": ("PluginUnreachableError", "RemoteHandle"),
        "plugin_di.launch.supervisor": ("Supervisor", "SupervisorState"),
    },
)
