"""App: a dependency-injector container brought to life, as ``fx.New`` does for Go.

    app = App(AppContainer)           # or App(container, invoke=[container.api])
    app.validate()                    # cycles, missing dependencies: nothing is built
    await app.start()                 # build every provider once, run start hooks
    await app.stop()                  # run stop hooks, dependents first
    raise SystemExit(app.run())       # start, wait for SIGINT/SIGTERM or shutdown, stop

Phases: *validate* reads the graph; *build* calls every provider once in start
order and collects hooks (objects with ``start``/``stop``, hooks appended to the
`Lifecycle`); *start* walks the graph, independent branches concurrently; a
failure or a timeout rolls back every hook that started, with a fresh stop budget;
*stop* walks it back, best effort.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, overload

from dependency_injector import containers, providers
from typing_extensions import TypeVar

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.di import _build, _export
from plugin_di.di._container import (
    bind_markers,
    container_name,
    instantiate,
    resolve_roots,
)
from plugin_di.di._phases import APP_NODE, Phases, stop_error
from plugin_di.di._plan import Plan, plan, to_networkx
from plugin_di.di._run import run_app
from plugin_di.di.errors import CycleError, MissingDependencyError
from plugin_di.di.events import (
    Emitter,
    Event,
    LoggingSink,
    Sink,
    Started,
    Stopped,
    Stopping,
)
from plugin_di.di.graph import ProviderGraph
from plugin_di.di.lifecycle import Hook, Lifecycle
from plugin_di.di.shutdown import Shutdowner
from plugin_di.settings import Settings

if TYPE_CHECKING:
    import networkx as nx

State = Literal["new", "starting", "started", "stopping", "stopped", "failed"]

ContainerT = TypeVar("ContainerT", bound=containers.Container, default=Any)
"""The container type of an `App`: ``App(AppContainer).container`` is an ``AppContainer``."""

__all__ = ["APP_NODE", "App", "ContainerT", "State", "app_from"]


class App(Generic[ContainerT]):
    """Validate, build, start and stop the providers of a dependency-injector container.

    ``container``: a ``DeclarativeContainer`` class (instantiated here) or a container
    instance; ``app.container`` is that instance, typed (``App[AppContainer]``).
    ``invoke``: the roots (providers or their dotted names); only what they need is built.
    Without roots every provider is built, except factory-like ones (Factory,
    Callable, Coroutine) that nothing needs: those are blueprints.
    ``sinks``: event sinks; default: a `LoggingSink` configured from ``settings``.
    ``cancel_grace``: how long a cancelled hook may take to finish before it is
    reported as still running.
    """

    @overload
    def __init__(
        self,
        container: type[ContainerT],
        invoke: Iterable[object] = (),
        *,
        settings: Settings | None = None,
        sinks: Iterable[Sink] | None = None,
        clock: Clock | None = None,
        name: str | None = None,
        cancel_grace: float = 1.0,
    ) -> None: ...

    @overload
    def __init__(
        self,
        container: ContainerT,
        invoke: Iterable[object] = (),
        *,
        settings: Settings | None = None,
        sinks: Iterable[Sink] | None = None,
        clock: Clock | None = None,
        name: str | None = None,
        cancel_grace: float = 1.0,
    ) -> None: ...

    def __init__(
        self,
        container: Any,
        invoke: Iterable[object] = (),
        *,
        settings: Settings | None = None,
        sinks: Iterable[Sink] | None = None,
        clock: Clock | None = None,
        name: str | None = None,
        cancel_grace: float = 1.0,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.cancel_grace = cancel_grace
        instance, declared = instantiate(container)
        self.container: ContainerT = instance
        self.name = name or container_name(self.container, declared)
        if sinks is None:
            sinks = [LoggingSink(self.settings.log_format, self.settings.log_level)]
        self.events = Emitter(sinks)
        self.lifecycle = Lifecycle()
        self.shutdowner = Shutdowner()
        self._graph = ProviderGraph.collect(self.container, self.name)
        bind_markers(
            self._graph,
            [(Lifecycle, self.lifecycle), (Shutdowner, self.shutdowner), (Emitter, self.events)],
            {Lifecycle: self.lifecycle, Settings: self.settings},
        )
        self._roots = resolve_roots(self._graph, list(invoke), declared)
        self._nodes = self._graph.reachable(self._roots)
        self._plan: Plan | None = None
        self._nx: nx.DiGraph | None = None
        self._state: State = "new"
        self._done: list[list[Hook]] = []
        self._ready = asyncio.Event()
        self._finished = asyncio.Event()
        self._start_error: BaseException | None = None
        self._built = False
        # hooks that ignored cancellation and may still be running (see StartError.still_running)
        self.background: set[asyncio.Task[None]] = set()
        self._phases = Phases(
            events=self.events,
            clock=self.clock,
            settings=self.settings,
            cancel_grace=cancel_grace,
            background=self.background,
        )

    # -- the graph ------------------------------------------------------------------

    @property
    def providers(self) -> ProviderGraph:
        """Every named provider of the container, with dependency index lists."""
        return self._graph

    @property
    def nodes(self) -> list[str]:
        """Names of the providers this app manages (reachable from the roots)."""
        return [self._graph.names[i] for i in self._nodes]

    @property
    def edges(self) -> int:
        return sum(len(self._graph.deps[i]) for i in self._nodes)

    @property
    def graph(self) -> nx.DiGraph:
        """The networkx DiGraph of the managed providers; edges point to what a node needs.

        Node attributes: ``provider``, ``kind`` (provider class name), ``stage``
        (start stage, from 1; None when the graph has a cycle).
        """
        if self._nx is None:
            try:
                stage_of: dict[int, int] | None = self._ensure_plan().stage_of
            except CycleError:
                stage_of = None
            self._nx = to_networkx(self._graph, self._nodes, stage_of)
        return self._nx

    def validate(self) -> None:
        """Raise `CycleError` or `MissingDependencyError`; builds and starts nothing."""
        self._ensure_plan()
        idle = self._idle()
        wanted = [i for i in self._nodes if i not in idle] if idle else self._nodes
        missing = self._graph.missing(wanted, self._roots)
        if missing:
            raise MissingDependencyError(missing)

    def start_order(self) -> list[list[str]]:
        """The providers grouped by start stage (networkx's topological generations); each
        stage may start concurrently. Stop runs this order backwards."""
        names = self._graph.names
        return [[names[i] for i in stage] for stage in self._ensure_plan().stages]

    def export(self, fmt: Literal["text", "dot", "mermaid"] = "text") -> str:
        """The graph as a text tree, Graphviz DOT or a Mermaid flowchart, with start order."""
        try:
            stages, cycle = self.start_order(), None
        except CycleError as exc:
            stages, cycle = [], exc
        view = _export.GraphView(self.name, self._graph, self._nodes, self._roots, stages, cycle)
        return _export.render(view, fmt)

    def _idle(self) -> set[int]:
        """Nodes not built: blueprints (factory-like providers) and `providers.Dependency`
        that nothing needs and no root names. They only matter to whoever uses them."""
        graph = self._graph
        roots = set(self._roots)
        needed = {d for i in self._nodes for d in graph.deps[i]}
        return {
            i
            for i in self._nodes
            if i not in needed
            and i not in roots
            and isinstance(graph.providers[i], (*_build.BLUEPRINTS, providers.Dependency))
        }

    def _ensure_plan(self) -> Plan:
        if self._plan is None:
            self._plan = plan(self._graph, self._nodes)
        return self._plan

    # -- events ---------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Send an event to every sink of this app."""
        self.events.emit(event)

    # -- start / stop ---------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    async def ready(self) -> None:
        """Return once the app has started; raise the start error if start failed."""
        await self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    async def start(self) -> None:
        """Validate, build every provider once, then run the start hooks.

        Raises a `GraphError` or `ProviderBuildError` (nothing started) or a
        `StartError` (everything that started was stopped again).
        """
        if self._state != "new":
            raise RuntimeError(f"App.start: an app starts once; this one is {self._state}")
        self._state = "starting"
        self.shutdowner.bind(asyncio.get_running_loop())
        began = self.clock.now()
        try:
            await self.build()
            result = await self._phases.start()
        except BaseException as exc:
            self._fail(exc)
            raise
        if result.ok:
            self._state = "started"
            self._done = result.done
            self.emit(Started(self.name, result.count, self.clock.now() - began))
            self._ready.set()
            return
        error = await self._phases.rollback(result)
        self._fail(error)
        raise error

    async def stop(self, reason: str = "stop requested") -> None:
        """Run the stop hooks of everything that started, dependents first. Idempotent.

        Every hook runs even when others fail; the failures are raised together as a
        `StopError` (once: a second call returns quietly).
        """
        if self._state == "starting":
            self.interrupt(reason)
            await self._finished.wait()
            return
        if self._state == "stopping":
            await self._finished.wait()
            return
        if self._state != "started":
            return
        self._state = "stopping"
        self.emit(Stopping(self.name, reason))
        began = self.clock.now()
        try:
            result = await self._phases.stop(self._done, self.settings.stop_timeout)
            error = stop_error(result)
            self.emit(Stopped(self.name, result.count, self.clock.now() - began, error))
        finally:
            self._state = "stopped"
            self._finished.set()
        if error is not None:
            raise error

    def interrupt(self, reason: str) -> None:
        """Abort a start in progress (or the next one): its running hooks are cancelled,
        then everything that started is rolled back, and `start` raises `StartError`."""
        self._phases.interrupt(reason)

    def _fail(self, error: BaseException) -> None:
        self._state = "failed"
        self._start_error = error
        self._ready.set()
        self._finished.set()

    async def build(self) -> None:
        """Validate, then call every provider once in start order and collect the hooks.

        `start` does this first; call it alone to construct without starting. Raises a
        `GraphError`, or `ProviderBuildError` naming the provider, where it was declared,
        with the original exception chained (resources already built are shut down).
        """
        if self._built:
            return
        if self._state != "new" and self._state != "starting":
            raise RuntimeError(f"App.build: this app is {self._state}")
        try:
            self.validate()
            await self._build()
        except BaseException as exc:
            self._fail(exc)
            raise
        self._built = True

    async def _build(self) -> None:
        order = self._ensure_plan().order
        idle = self._idle()
        built = [i for i in order if i not in idle]
        hooks = await _build.build(self._graph, built, self.lifecycle, self.events, self.clock)
        lifecycle = self.lifecycle
        by_node = dict(zip(built, hooks, strict=True))
        shared, extra = lifecycle.shared_nodes(), lifecycle.hooks(None)
        self._phases.load(self._graph, order, by_node, shared, extra)
        lifecycle.seal()

    # -- run ------------------------------------------------------------------------

    def run(self) -> int:
        """Start, wait for SIGINT/SIGTERM or `Shutdowner.shutdown`, stop; return the exit code.

        The loop is uvloop when installed (``Settings.event_loop``, `plugin_di.eventloop`).
        """
        from plugin_di import eventloop

        return eventloop.run(self.run_async(), self.settings.event_loop)

    async def run_async(self) -> int:
        """`run` for a caller that owns the event loop. Errors are reported on stderr.

        A signal during start aborts it (rolled back, exit code 1, 130 for SIGINT); after
        start, SIGTERM (exit code 0), SIGINT (130, as a shell reports Ctrl-C) or
        `Shutdowner.shutdown` (its code) stops the app.
        """
        return await run_app(self)

    def __repr__(self) -> str:
        return f"<App {self.name} providers={len(self._nodes)} state={self._state}>"


@overload
def app_from(target: App[ContainerT], **options: Any) -> App[ContainerT]: ...
@overload
def app_from(target: type[ContainerT], **options: Any) -> App[ContainerT]: ...
@overload
def app_from(target: ContainerT, **options: Any) -> App[ContainerT]: ...
def app_from(target: object, **options: Any) -> App[Any]:
    """``target`` itself if it is an App, else ``App(target, **options)`` for a container.

    Raises TypeError with a readable message for anything else.
    """
    if isinstance(target, App):
        return target
    return App(target, **options)
