"""Test helpers: override providers for one test, run an app for the length of a block.

    def test_api(container):
        with override(container, db=FakeDatabase()):
            ...

    async def test_serves():
        async with started(AppContainer) as app:   # an App, a container class or instance
            ...                                     # stopped on exit, errors raised loudly

The pytest plugin (`plugin_di.pytest_plugin`) wraps both as fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from dependency_injector import providers

from plugin_di.di.app import App, app_from
from plugin_di.di.fakes import FakeClient, FakeImpl

__all__ = ["FakeClient", "FakeImpl", "Overrides", "override", "started"]

_MISSING: Any = object()


class Overrides:
    """Overrides applied one by one and all undone, last first, by `restore`."""

    def __init__(self) -> None:
        self._applied: list[providers.Provider[Any]] = []

    def __call__(
        self,
        target: Any,
        value: Any = _MISSING,
        /,
        mapping: Mapping[str, Any] | None = None,
        **named: Any,
    ) -> None:
        """Override ``target`` (a provider) with ``value``, or the named providers of
        ``target`` (a container): ``override(c, db=fake)``, ``override(c, {"sub.pool": p})``.

        A value that is not a provider is wrapped in ``providers.Object``.
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

    def _apply(self, provider: providers.Provider[Any], value: Any) -> None:
        replacement = value if isinstance(value, providers.Provider) else providers.Object(value)
        provider.override(replacement)
        self._applied.append(provider)

    def restore(self) -> None:
        """Undo every override, last first."""
        while self._applied:
            self._applied.pop().reset_last_overriding()


@contextmanager
def override(
    target: Any, value: Any = _MISSING, /, mapping: Mapping[str, Any] | None = None, **named: Any
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


@asynccontextmanager
async def started(target: Any, **options: Any) -> AsyncIterator[App]:
    """Start an app (or a container, wrapped in an App) and stop it when the block ends.

    A start failure raises (`StartError` carries the rollback report) and a stop
    failure raises `StopError`, so a test cannot pass while hooks fail.
    """
    app = app_from(target, **options)
    await app.start()
    try:
        yield app
    finally:
        await app.stop("test finished")


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
