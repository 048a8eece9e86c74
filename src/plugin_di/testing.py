"""Test helpers: override providers for one test, run an app for the length of a block.

    def test_api(container):
        with override(container, db=FakeDatabase(), kv=FakeKV()):  # kv: a plugin provider
            ...

    async def test_serves():
        async with started(AppContainer) as app:   # an App, a container class or instance
            ...                                     # stopped on exit, errors raised loudly

A plugin provider is overridden by a fake implementation (served in memory through the
generated client), a fake client (used as is) or another `Plugin`; `FakeImpl` and
`FakeClient` say which when the object's methods cannot (see `plugin_di.di.fakes`).
The pytest plugin (`plugin_di.pytest_plugin`) wraps both as fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, overload

from dependency_injector import containers, providers

from plugin_di.di.app import App, ContainerT, app_from
from plugin_di.di.fakes import FakeClient, FakeImpl

__all__ = [
    "FakeClient",
    "FakeImpl",
    "Overrides",
    "StartedApps",
    "Target",
    "override",
    "started",
]

_MISSING: Any = object()

Target = providers.Provider[Any] | containers.Container | type[containers.Container]
"""What `override` overrides: a provider, or the named providers of a container."""


class Overrides:
    """Overrides applied one by one and all undone, last first, by `restore`."""

    def __init__(self) -> None:
        self._applied: list[providers.Provider[Any]] = []

    def __call__(
        self,
        target: Target,
        value: object = _MISSING,
        /,
        mapping: Mapping[str, object] | None = None,
        **named: object,
    ) -> None:
        """Override ``target`` (a provider) with ``value``, or the named providers of
        ``target`` (a container): ``override(c, db=fake)``, ``override(c, {"sub.pool": p})``.

        A value that is not a provider is wrapped in ``providers.Object``; a plugin
        provider takes fakes (see the module docstring).
        """
        if value is not _MISSING:
            if mapping is not None or named:
                raise TypeError("override: pass either a provider and a value, or names")
            if not isinstance(target, providers.Provider):
                if isinstance(value, Mapping):
                    mapping = value
                else:
                    raise TypeError(f"override: {target!r} is not a provider")
            else:
                self._apply(target, value)
                return
        items = {**(mapping or {}), **named}
        if not items:
            raise TypeError("override: nothing to override")
        for dotted, replacement in items.items():
            self._apply(_resolve(target, dotted), replacement)

    def _apply(self, provider: providers.Provider[Any], value: object) -> None:
        replacement = value if isinstance(value, providers.Provider) else providers.Object(value)
        provider.override(replacement)
        self._applied.append(provider)

    def restore(self) -> None:
        """Undo every override, last first."""
        while self._applied:
            self._applied.pop().reset_last_overriding()


@contextmanager
def override(
    target: Target,
    value: object = _MISSING,
    /,
    mapping: Mapping[str, object] | None = None,
    **named: object,
) -> Iterator[Overrides]:
    """Override providers inside a ``with`` block; the originals come back on exit.

    Build the App inside the block: an App reads the graph when it is created.
    """
    overrides = Overrides()
    try:
        overrides(target, value, mapping, **named)
        yield overrides
    finally:
        overrides.restore()


@overload
def started(
    target: App[ContainerT], **options: Any
) -> AbstractAsyncContextManager[App[ContainerT]]: ...
@overload
def started(
    target: type[ContainerT], **options: Any
) -> AbstractAsyncContextManager[App[ContainerT]]: ...
@overload
def started(target: ContainerT, **options: Any) -> AbstractAsyncContextManager[App[ContainerT]]: ...
def started(target: Any, **options: Any) -> AbstractAsyncContextManager[App[Any]]:
    """Start an app (or a container, wrapped in an App) and stop it when the block ends.

    A start failure raises (`StartError` carries the rollback report) and a stop
    failure raises `StopError`, so a test cannot pass while hooks fail. ``options``
    are `App`'s (``settings=``, ``sinks=``, ...) for a container.
    """
    return _started(target, options)


@asynccontextmanager
async def _started(target: Any, options: dict[str, Any]) -> AsyncIterator[App[Any]]:
    app = app_from(target, **options)
    await app.start()
    try:
        yield app
    finally:
        await app.stop("test finished")


class StartedApps:
    """Starts apps on demand and stops them all, last first: the ``di_started`` fixture.

    ``app = await di_started(AppContainer)`` (an App, a container class or instance;
    ``options`` as for `started`); `aclose` stops them and raises their stop errors together.
    """

    def __init__(self) -> None:
        self.apps: list[App[Any]] = []

    @overload
    async def __call__(self, target: App[ContainerT], /, **options: Any) -> App[ContainerT]: ...
    @overload
    async def __call__(self, target: type[ContainerT], /, **options: Any) -> App[ContainerT]: ...
    @overload
    async def __call__(self, target: ContainerT, /, **options: Any) -> App[ContainerT]: ...
    async def __call__(self, target: Any, /, **options: Any) -> App[Any]:
        app = app_from(target, **options)
        await app.start()
        self.apps.append(app)
        return app

    async def aclose(self) -> None:
        errors: list[Exception] = []
        while self.apps:
            try:
                await self.apps.pop().stop("test finished")
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup("di_started: stopping apps failed", errors)


def _resolve(container: Any, dotted: str) -> providers.Provider[Any]:
    value = container
    for part in dotted.split("."):
        members = getattr(value, "providers", None)
        if isinstance(members, dict) and part in members:
            value = members[part]
            continue
        container_of = getattr(value, "container", None)
        inner = getattr(container_of, "providers", None)
        if isinstance(inner, dict) and part in inner:
            value = inner[part]
            continue
        raise LookupError(f"override: no provider named {dotted!r} in {container!r}")
    if not isinstance(value, providers.Provider):
        raise LookupError(f"override: {dotted!r} names {value!r}, not a provider")
    return value
