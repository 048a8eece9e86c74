"""Lifecycle events: dataclasses sent to sinks. Logging is one sink; any callable is another.

Other parts of plugin-di (supervision, circuit breakers) define their own events by
subclassing `Event` and send them with ``Emitter.emit``; a provider receives the app's
emitter through `EmitterProvider`, exactly like the `Lifecycle`::

    @dataclass(frozen=True)
    class PluginRestarted(Event):
        plugin: str
        attempt: int

    class Container(containers.DeclarativeContainer):
        events = EmitterProvider()
        supervisor = providers.Singleton(Supervisor, events=events)
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from dependency_injector import providers

from plugin_di.logs import EVENT_ATTRIBUTE

Sink = Callable[["Event"], object]
"""Anything that accepts an event. Its return value is ignored; its exceptions are logged."""

_log = logging.getLogger("plugin_di")


@dataclass(frozen=True)
class Event:
    """Base class of every event. ``level`` is the logging level the logging sink uses."""

    level: ClassVar[int] = logging.INFO

    def log_level(self) -> int:
        """The level the logging sink uses: ``level``, raised to WARNING when ``error`` is set."""
        if getattr(self, "error", None) is not None:
            return max(self.level, logging.WARNING)
        return self.level

    def message(self) -> str:
        """One line for humans (the text log format)."""
        parts = [f"{k}={_text(v)}" for k, v in self.fields().items()]
        return " ".join([type(self).__name__, *parts])

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the event name, then each field (exceptions become their text)."""
        out: dict[str, Any] = {"event": type(self).__name__}
        for key, value in self.fields().items():
            out[key] = _jsonable(value)
        return out


@dataclass(frozen=True)
class ProviderBuilt(Event):
    """A provider was built (its constructor ran) while the app was being built."""

    level: ClassVar[int] = logging.DEBUG
    provider: str
    duration: float
    error: BaseException | None = None

    def message(self) -> str:
        tail = f" failed ({_kind(self.error)})" if self.error else ""
        return f"built {self.provider} in {_ms(self.duration)}{tail}"


@dataclass(frozen=True)
class HookExecuting(Event):
    """A start or stop hook is about to run."""

    level: ClassVar[int] = logging.DEBUG
    phase: Literal["start", "stop"]
    provider: str
    hook: str

    def message(self) -> str:
        return f"{self.phase} hook {self.hook} of {self.provider} executing"


@dataclass(frozen=True)
class HookExecuted(Event):
    """A start or stop hook finished; ``error`` is set when it raised or timed out."""

    level: ClassVar[int] = logging.DEBUG
    phase: Literal["start", "stop"]
    provider: str
    hook: str
    duration: float
    error: BaseException | None = None

    def message(self) -> str:
        # The error's text is told once, by the StartError or StopError the caller gets
        # (``plugin-di run`` prints it with the traceback); the log says what and when.
        outcome = f"failed ({_kind(self.error)})" if self.error else "done"
        return f"{self.phase} hook {self.hook} of {self.provider} {outcome} in {_ms(self.duration)}"


@dataclass(frozen=True)
class Waiting(Event):
    """Hooks still run after ``Settings.progress_interval``: what is pending, and for how long.

    ``pending``: (provider, seconds it has been running), longest first.
    """

    phase: Literal["start", "stop"]
    pending: tuple[tuple[str, float], ...]

    def message(self) -> str:
        what = ", ".join(f"{name} ({self.phase}, {took:.1f} s)" for name, took in self.pending)
        return f"waiting for: {what}"


@dataclass(frozen=True)
class RollingBack(Event):
    """Start failed; every hook that started is being stopped."""

    level: ClassVar[int] = logging.ERROR
    error: BaseException

    def message(self) -> str:
        return "start failed; rolling back what started"


@dataclass(frozen=True)
class RolledBack(Event):
    """The rollback finished; ``error`` carries the stop errors, if any."""

    level: ClassVar[int] = logging.WARNING
    stopped: int
    error: BaseException | None = None

    def message(self) -> str:
        tail = f", {_failures(self.error)} failed" if self.error else ""
        noun = "hook" if self.stopped == 1 else "hooks"
        return f"rolled back: {self.stopped} {noun} stopped{tail}"


@dataclass(frozen=True)
class Started(Event):
    """Every start hook succeeded: the app is ready."""

    app: str
    hooks: int
    duration: float

    def message(self) -> str:
        return f"started {self.app}: {self.hooks} hooks in {_ms(self.duration)}"


@dataclass(frozen=True)
class Stopping(Event):
    """Stop begins; ``reason`` says why (a signal, a shutdown request, the caller)."""

    app: str
    reason: str

    def message(self) -> str:
        return f"stopping {self.app} ({self.reason})"


@dataclass(frozen=True)
class Stopped(Event):
    """Every stop hook ran; ``error`` is set when some failed."""

    app: str
    hooks: int
    duration: float
    error: BaseException | None = None

    def message(self) -> str:
        tail = f"; {_failures(self.error)} failed" if self.error else ""
        return f"stopped {self.app}: {self.hooks} hooks in {_ms(self.duration)}{tail}"


@dataclass(frozen=True)
class ShutdownRequested(Event):
    """`Shutdowner.shutdown` was called or a signal arrived."""

    exit_code: int
    reason: str

    def message(self) -> str:
        return f"shutdown requested ({self.reason}), exit code {self.exit_code}"


class LoggingSink:
    """Writes events to the stdlib logger ``plugin_di`` as text or one JSON object per line."""

    def __init__(
        self,
        log_format: Literal["text", "json"] = "text",
        level: int | str = logging.DEBUG,
        logger: logging.Logger | None = None,
    ) -> None:
        self.format = log_format
        self.level = logging.getLevelName(level) if isinstance(level, str) else level
        if not isinstance(self.level, int):
            raise ValueError(f"unknown log level {level!r}")
        self.logger = logger or _log

    def wants(self, level: int) -> bool:
        """Whether an event of ``level`` would be written (lets callers skip building it)."""
        return level >= self.level and self.logger.isEnabledFor(level)

    def __call__(self, event: Event) -> None:
        level = event.log_level()
        if level < self.level or not self.logger.isEnabledFor(level):
            return
        # the event rides along: plugin_di.logs.JSONFormatter writes its fields
        extra = {EVENT_ATTRIBUTE: event}
        if self.format == "json":
            self.logger.log(level, json.dumps(event.to_dict(), sort_keys=False), extra=extra)
        else:
            self.logger.log(level, event.message(), extra=extra)


class Emitter:
    """Sends each event to every sink; a failing sink is logged and never breaks the app."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self._sinks: list[Sink] = list(sinks)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return tuple(self._sinks)

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        self._sinks.remove(sink)

    def wants(self, level: int) -> bool:
        """Whether any sink takes events of ``level``: hot paths skip building the others.

        A plain callable takes every event; a sink with a ``wants(level)`` method decides.
        """
        for sink in self._sinks:
            wants = getattr(sink, "wants", None)
            if wants is None or wants(level):
                return True
        return False

    def emit(self, event: Event) -> None:
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:
                _log.exception("event sink %r failed on %s", sink, type(event).__name__)


class EmitterProvider(providers.Dependency[Emitter]):
    """Declare it in a container to receive the app's `Emitter`; the App binds it."""

    def __init__(self) -> None:
        super().__init__(instance_of=Emitter)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms"


def _kind(error: BaseException) -> str:
    """``RuntimeError``, or ``timed out`` for a hook timeout: the error without its text."""
    return "timed out" if isinstance(error, TimeoutError) else type(error).__name__


def _failures(error: BaseException) -> str:
    """How many hooks a stop error counts (``1 hook``, ``2 hooks``)."""
    count = len(getattr(error, "failures", ())) or 1
    return f"{count} hook" if count == 1 else f"{count} hooks"


def _text(value: object) -> str:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}".splitlines()[0]
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
