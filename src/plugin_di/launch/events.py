"""What happens to a plugin at run time, as data: started, crashed, restarted, gave up, stopped.

The launch layer cannot see the lifecycle engine, so it hands these to a plain
``emit`` callable; the plugin providers connect that to the engine's event sinks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from plugin_di.plugin.health import HealthState

__all__ = [
    "EmitFn",
    "HealthState",
    "PluginBreakerChanged",
    "PluginCrashed",
    "PluginEvent",
    "PluginGaveUp",
    "PluginHealth",
    "PluginRestarted",
    "PluginStarted",
    "PluginStopped",
    "discard",
]


@dataclass(frozen=True)
class PluginHealth:
    """A plugin's health as the host sees it."""

    state: HealthState
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.state.name}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class PluginEvent:
    """Base of every plugin event; ``plugin`` is the plugin's name."""

    plugin: str


@dataclass(frozen=True)
class PluginStarted(PluginEvent):
    """The plugin is serving (first start), at ``url``."""

    url: str
    pid: int | None = None
    placement: str = "process"


@dataclass(frozen=True)
class PluginCrashed(PluginEvent):
    """The plugin process ended without being asked to; ``restart_in`` is None if it stays down."""

    exit_code: int | None
    stderr_tail: Sequence[str] = field(default_factory=tuple)
    restart_in: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class PluginRestarted(PluginEvent):
    """The plugin serves again after a crash; dependents' clients now reach ``url``."""

    url: str
    pid: int | None
    attempt: int


@dataclass(frozen=True)
class PluginGaveUp(PluginEvent):
    """Too many crashes within the window: the plugin stays down and is UNHEALTHY."""

    crashes: int
    window: float
    reason: str


@dataclass(frozen=True)
class PluginStopped(PluginEvent):
    """The plugin was stopped by the host."""

    exit_code: int | None = None


EmitFn = Callable[[PluginEvent], None]


def discard(event: PluginEvent) -> None:
    """An ``emit`` that drops events."""


@dataclass(frozen=True)
class PluginBreakerChanged(PluginEvent):
    """A circuit breaker of the plugin's clients changed state (``Closed``, ``Open``,
    ``HalfOpen``); while one is open, calls fail fast and health is DEGRADED."""

    endpoint: str
    old: str
    new: str
