"""Plugin events as lifecycle-engine events: the launch layer's dataclasses, sent to the sinks.

Each class here subclasses both `plugin_di.di.events.Event` (so every sink and the
logging format handle it) and the launch-layer event of the same name (so code
matching ``plugin_di.launch.events.PluginGaveUp`` matches these too).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from plugin_di.di.events import Emitter, Event, LoggingSink
from plugin_di.launch import events as launch
from plugin_di.launch.process import describe_exit
from plugin_di.rpc.telemetry import current as current_telemetry


@dataclass(frozen=True)
class PluginStarted(Event, launch.PluginStarted):
    """A plugin serves: launched (process), bound (remote) or ready in memory."""

    level: ClassVar[int] = logging.INFO

    def message(self) -> str:
        pid = f", pid {self.pid}" if self.pid else ""
        return f"plugin {self.plugin} started ({self.placement}) at {self.url}{pid}"


@dataclass(frozen=True)
class PluginCrashed(Event, launch.PluginCrashed):
    """A plugin process ended unasked."""

    level: ClassVar[int] = logging.WARNING

    def message(self) -> str:
        then = f"restart in {self.restart_in:g} s" if self.restart_in is not None else "no restart"
        tail = f"; stderr: {self.stderr_tail[-1]}" if self.stderr_tail else ""
        return f"plugin {self.plugin} crashed ({self.reason}); {then}{tail}"


@dataclass(frozen=True)
class PluginRestarted(Event, launch.PluginRestarted):
    """A crashed plugin serves again; its clients now reach the new process."""

    level: ClassVar[int] = logging.WARNING

    def message(self) -> str:
        return f"plugin {self.plugin} restarted (restart {self.attempt}) at {self.url}"


@dataclass(frozen=True)
class PluginGaveUp(Event, launch.PluginGaveUp):
    """Crash loop: the plugin stays down, UNHEALTHY."""

    level: ClassVar[int] = logging.ERROR

    def message(self) -> str:
        return f"plugin {self.plugin} is UNHEALTHY: {self.reason}"


@dataclass(frozen=True)
class PluginStopped(Event, launch.PluginStopped):
    """The host stopped a plugin."""

    level: ClassVar[int] = logging.INFO

    def message(self) -> str:
        code = f" ({describe_exit(self.exit_code)})" if self.exit_code is not None else ""
        return f"plugin {self.plugin} stopped{code}"


@dataclass(frozen=True)
class BreakerStateChanged(Event, launch.PluginBreakerChanged):
    """A circuit breaker of the plugin's clients changed state; WARNING when it opens."""

    level: ClassVar[int] = logging.INFO

    def log_level(self) -> int:
        return logging.WARNING if self.new != "Closed" else logging.INFO

    def message(self) -> str:
        if self.new == "Open":
            then = "calls fail fast with UNAVAILABLE; health is DEGRADED"
        elif self.new == "HalfOpen":
            then = "probing"
        else:
            then = "calls pass again"
        return f"plugin {self.plugin}: circuit for {self.endpoint} {self.old} -> {self.new}; {then}"


_ENGINE_TYPES: dict[type[launch.PluginEvent], type[Event]] = {
    launch.PluginStarted: PluginStarted,
    launch.PluginCrashed: PluginCrashed,
    launch.PluginRestarted: PluginRestarted,
    launch.PluginGaveUp: PluginGaveUp,
    launch.PluginStopped: PluginStopped,
    launch.PluginBreakerChanged: BreakerStateChanged,
}


def engine_event(event: launch.PluginEvent) -> Event:
    """The engine event for a launch-layer event (the same object if it already is one)."""
    if isinstance(event, Event):
        return event
    kind = _ENGINE_TYPES.get(type(event))
    if kind is None:
        raise TypeError(f"no engine event for {type(event).__name__}")
    values = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return kind(**values)


_fallback = Emitter([LoggingSink("text", logging.INFO)])


def emit_to(emitter: Emitter | None) -> Callable[[launch.PluginEvent], None]:
    """An ``emit`` for launch code that feeds ``emitter`` (or the ``plugin_di`` logger)."""
    target = emitter if emitter is not None else _fallback

    def emit(event: launch.PluginEvent) -> None:
        telemetry = current_telemetry()  # first: a sink reading the metrics sees the event
        seen = observed(event) if telemetry is not None else None
        if telemetry is not None and seen is not None:
            telemetry.plugin_event(event.plugin, *seen)
        target.emit(engine_event(event))

    return emit


def observed(event: launch.PluginEvent) -> tuple[str, str | None] | None:
    """What telemetry counts of a plugin event: its kind (``started``, ``crashed``,
    ``restarted``, ``gave_up``, ``stopped``, ``breaker``) and the health it leaves."""
    if isinstance(event, launch.PluginBreakerChanged):
        return "breaker", "HEALTHY" if event.new == "Closed" else "DEGRADED"
    if isinstance(event, launch.PluginCrashed):
        return "crashed", "UNHEALTHY"
    if isinstance(event, launch.PluginGaveUp):
        return "gave_up", "UNHEALTHY"
    if isinstance(event, launch.PluginRestarted):
        return "restarted", "HEALTHY"
    if isinstance(event, launch.PluginStarted):
        return "started", "HEALTHY"
    if isinstance(event, launch.PluginStopped):
        return "stopped", None
    return None
