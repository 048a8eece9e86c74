"""Errors of the lifecycle engine. Each says what failed, where it was declared, and what to do.

Graph problems (`CycleError`, `MissingDependencyError`) are found by ``App.validate()``
before anything is built; `ProviderBuildError` when a provider raises while the app
builds it; `StartError` and `StopError` are exception groups that carry every error
of a start (with its rollback) or of a stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from plugin_di._tracebacks import user_traceback

Phase = Literal["start", "stop"]


class LifecycleError(Exception):
    """Base class of every error raised by the lifecycle engine."""


class GraphError(LifecycleError):
    """The dependency graph cannot be started: a cycle or a missing dependency."""


class CycleError(GraphError):
    """Providers depend on each other in a loop; ``path`` starts and ends with the same name."""

    def __init__(self, path: Sequence[str], locations: Sequence[str | None] = ()) -> None:
        self.path = list(path)
        lines = ["dependency cycle: " + " -> ".join(self.path)]
        for name, where in zip(self.path[:-1], locations, strict=False):
            if where:
                lines.append(f"  {name} declared at {where}")
        lines.append(
            "  fix: break the loop, e.g. inject a provider (`x.provider`) instead of a value"
        )
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class MissingDependency:
    """One `providers.Dependency` nothing provides, with the chain from the root that needs it."""

    name: str
    chain: tuple[str, ...]
    instance_of: str
    location: str | None

    def describe(self) -> str:
        where = f" (declared at {self.location})" if self.location else ""
        return (
            f"missing dependency: {self.name}{where} is a providers.Dependency"
            f"(instance_of={self.instance_of}) that nothing provides\n"
            f"  needed by: {' -> '.join(self.chain)}"
        )


class MissingDependencyError(GraphError):
    """One or more `providers.Dependency` are neither overridden nor given a default."""

    def __init__(self, missing: Sequence[MissingDependency]) -> None:
        self.missing = list(missing)
        lines = [m.describe() for m in self.missing]
        lines.append(
            "  fix: provide it where the container is nested, e.g. "
            "providers.Container(Sub, name=...), or override it before the app starts"
        )
        super().__init__("\n".join(lines))


class ProviderBuildError(LifecycleError):
    """A provider raised while the app built it; the original exception is ``__cause__``."""

    def __init__(self, name: str, location: str | None, error: BaseException) -> None:
        self.name = name
        self.location = location
        self.error = error
        where = f" declared at {location}" if location else ""
        super().__init__(
            f"cannot build {name}{where}: {type(error).__name__}: {error}\n"
            "  nothing was started; resources built before it were shut down"
        )


class UnknownProviderError(LifecycleError, LookupError):
    """An invoke root or an override names no provider of the container."""


@dataclass(frozen=True)
class HookFailure:
    """A hook that raised, timed out, or was cancelled."""

    phase: Phase
    node: str
    hook: str
    error: BaseException

    def describe(self) -> str:
        return f"{self.phase} hook {self.hook!r} of {self.node}: {_describe(self.error)}"

    def traceback(self) -> list[str]:
        """Where the hook raised, in the user's code (empty for timeouts and plugin-di's own
        errors, whose text says it all)."""
        if isinstance(self.error, HookTimeoutError | HookCancelledError):
            return []
        return user_traceback(self.error)


class HookTimeoutError(LifecycleError, TimeoutError):
    """A hook ran past its budget (the per-hook timeout or the phase's global one)."""

    def __init__(self, phase: Phase, node: str, hook: str, budget: float, which: str) -> None:
        self.phase = phase
        self.node = node
        self.hook = hook
        self.budget = budget
        self.which = which
        super().__init__(f"{phase} hook {hook!r} of {node} exceeded the {which} of {budget:g}s")


class HookCancelledError(LifecycleError):
    """A hook was cancelled because another hook failed or the app was interrupted."""


def _describe(error: BaseException) -> str:
    if isinstance(error, HookTimeoutError):
        return f"timed out (exceeded the {error.which} of {error.budget:g}s)"
    return f"{type(error).__name__}: {error}"


class StartError(LifecycleError, ExceptionGroup[Exception]):
    """Start failed and was rolled back.

    ``exceptions`` holds the start failures first, then every error of the rollback.
    ``failures`` names the failing hooks, ``stop_errors`` the rollback errors,
    ``still_running`` the hooks that ignored cancellation and may still be running.
    """

    failures: list[HookFailure]
    stop_errors: list[HookFailure]
    still_running: list[str]
    stopped: int
    reason: str

    def __new__(
        cls,
        reason: str,
        failures: Sequence[HookFailure],
        stop_errors: Sequence[HookFailure] = (),
        still_running: Sequence[str] = (),
        stopped: int = 0,
    ) -> StartError:
        errors = [_as_exception(f.error) for f in (*failures, *stop_errors)]
        if not errors:
            errors = [LifecycleError(reason)]
        self = super().__new__(cls, reason, errors)
        self.reason = reason
        self.failures = list(failures)
        self.stop_errors = list(stop_errors)
        self.still_running = list(still_running)
        self.stopped = stopped
        return self

    def __init__(self, reason: str, *args: object, **kwargs: object) -> None:
        errors = [_as_exception(f.error) for f in (*self.failures, *self.stop_errors)]
        super().__init__(reason, errors or [LifecycleError(reason)])

    def __str__(self) -> str:
        return self.report()

    def report(self, *, tracebacks: bool = False) -> str:
        """The whole story: what failed, what was rolled back, what is left running.

        Each failure is told once; ``tracebacks`` adds where each hook raised (the
        user's frames only), as ``plugin-di run`` prints it.
        """
        lines = [f"start failed: {self.reason}"]
        for i, failure in enumerate(self.failures):
            if i > 0 or failure.describe() != self.reason:
                lines.append(f"  - {failure.describe()}")
            if tracebacks:
                lines += _indented(failure.traceback())
        noun = "hook" if self.stopped == 1 else "hooks"
        lines.append(f"rolled back: {self.stopped} {noun} stopped, {len(self.stop_errors)} errors")
        for failure in self.stop_errors:
            lines.append(f"  - {failure.describe()}")
            if tracebacks:
                lines += _indented(failure.traceback())
        if self.still_running:
            lines.append("still running (ignored cancellation):")
            lines += [f"  - {name}" for name in self.still_running]
        return "\n".join(lines)


class StopError(LifecycleError, ExceptionGroup[Exception]):
    """Stop finished but some hooks failed, timed out, or were never run (stop timeout)."""

    failures: list[HookFailure]
    still_running: list[str]

    def __new__(
        cls, failures: Sequence[HookFailure], still_running: Sequence[str] = ()
    ) -> StopError:
        message = f"stop: {len(failures)} hooks failed"
        errors = [_as_exception(f.error) for f in failures] or [LifecycleError(message)]
        self = super().__new__(cls, message, errors)
        self.failures = list(failures)
        self.still_running = list(still_running)
        return self

    def __init__(self, *args: object, **kwargs: object) -> None:
        message = f"stop: {len(self.failures)} hooks failed"
        errors = [_as_exception(f.error) for f in self.failures]
        super().__init__(message, errors or [LifecycleError(message)])

    def __str__(self) -> str:
        return self.report()

    def report(self, *, tracebacks: bool = False) -> str:
        """Every failed stop hook, once; ``tracebacks`` adds where each raised."""
        lines = [f"stop failed: {len(self.failures)} errors"]
        for failure in self.failures:
            lines.append(f"  - {failure.describe()}")
            if tracebacks:
                lines += _indented(failure.traceback())
        if self.still_running:
            lines.append("still running (ignored cancellation):")
            lines += [f"  - {name}" for name in self.still_running]
        return "\n".join(lines)


def report(error: LifecycleError) -> str:
    """What ``App.run`` prints when start or stop fails: each failure once, with the
    file and line where the user's code raised."""
    if isinstance(error, StartError | StopError):
        return error.report(tracebacks=True)
    lines = [str(error)]
    if isinstance(error, ProviderBuildError):
        lines += _indented(user_traceback(error.error))
    return "\n".join(lines)


def _indented(lines: Sequence[str]) -> list[str]:
    return [f"    {line}" for line in lines]


def _as_exception(error: BaseException) -> Exception:
    if isinstance(error, Exception):
        return error
    wrapped = HookCancelledError(f"{type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped
