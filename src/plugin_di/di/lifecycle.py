"""Hooks and the Lifecycle they are appended to, as in uber-go/fx.

Any provided object with ``start()`` and/or ``stop()`` (sync or async) gets a hook
automatically. A provider that needs more control receives the app's `Lifecycle`
and appends hooks itself::

    class Container(containers.DeclarativeContainer):
        lifecycle = LifecycleProvider()
        server = providers.Singleton(make_server, lifecycle=lifecycle)

    def make_server(lifecycle: Lifecycle) -> Server:
        server = Server()
        lifecycle.append(Hook(on_start=server.listen, on_stop=server.close, name="listen"))
        return server

A hook appended while a provider is being built belongs to that provider: it starts
after the hooks of everything the provider depends on and stops before them.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeGuard, TypeVar, cast

from dependency_injector import providers

T = TypeVar("T")

HookFunc = Callable[[], object]
"""A hook body: a plain function, or one returning an awaitable (``async def``)."""


@dataclass(eq=False, slots=True)
class Hook:
    """A pair of callables run when the app starts and stops; either may be omitted.

    ``on_stop`` runs only if ``on_start`` succeeded (or there is no ``on_start``).
    Sync callables run on the event loop thread and should not block; async ones
    are cancelled when they exceed the hook timeout.
    """

    on_start: HookFunc | None = None
    on_stop: HookFunc | None = None
    name: str = ""
    # a stop hook that must run even if the start walk never reached it (resources that
    # were acquired while the app was built)
    always_stop: bool = field(default=False, repr=False)
    _derived: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.on_start is None and self.on_stop is None:
            raise ValueError("a Hook needs on_start, on_stop, or both")
        for fn in (self.on_start, self.on_stop):
            if fn is not None and not callable(fn):
                raise TypeError(f"hook callables must be callable, got {fn!r}")
        if not self.name:
            self.name = _callable_name(self.on_start or self.on_stop)
            self._derived = True

    def label(self, phase: str) -> str:
        """The name shown for ``phase``: ``name`` if given, else the phase's callable."""
        if not self._derived:
            return self.name
        fn = self.on_start if phase == "start" else self.on_stop
        return _callable_name(fn) if fn is not None else self.name


def _callable_name(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name).rsplit("<locals>.", 1)[-1] if name else repr(fn)


_AWAITABLE_TYPES: dict[type, bool] = {}


def is_awaitable(value: object) -> TypeGuard[Awaitable[Any]]:
    """`inspect.isawaitable`, with the answer for each type remembered (a hot path)."""
    kind = type(value)
    known = _AWAITABLE_TYPES.get(kind)
    if known is None:
        known = _AWAITABLE_TYPES[kind] = hasattr(kind, "__await__")
    return known or (kind is types.GeneratorType and inspect.isawaitable(value))


_PLAIN_TYPES: dict[type, bool] = {}  # type -> its instances can have no hooks


def hooks_for(value: object) -> Hook | None:
    """The automatic hook of an object with ``start()`` and/or ``stop()``, else None.

    Classes, modules, functions, providers and the app's own Lifecycle get none.
    """
    kind = type(value)
    plain = _PLAIN_TYPES.get(kind)
    if plain is None:
        plain = _PLAIN_TYPES[kind] = (
            issubclass(kind, type | Lifecycle | providers.Provider)
            or kind.__module__ == "builtins"
            or (not hasattr(kind, "start") and not hasattr(kind, "stop") and not _has_dict(kind))
            or inspect.ismodule(value)
            or inspect.isroutine(value)
        )
    if plain:
        return None
    start = getattr(value, "start", None)
    stop = getattr(value, "stop", None)
    start = start if callable(start) else None
    stop = stop if callable(stop) else None
    if start is None and stop is None:
        return None
    return Hook(on_start=start, on_stop=stop)


def _has_dict(kind: type) -> bool:
    """Whether instances may carry their own ``start``/``stop`` attributes."""
    return "__dict__" in dir(kind) and kind.__module__ != "builtins"


class Lifecycle:
    """Collects hooks; the App runs them. Obtain it with `LifecycleProvider` in a container."""

    def __init__(self) -> None:
        self._owner: str | None = None
        self._hooks: dict[str | None, list[Hook]] = {}
        self._shared: dict[str, SharedNode] = {}
        self._sealed = False
        self._scope = _Scope(self._leave)

    def append(self, hook: Hook) -> None:
        """Add a hook. It belongs to the provider being built when it is appended.

        Hooks appended outside a build (before the app starts) belong to the app
        itself: they start after every provider and stop before them.
        """
        if not isinstance(hook, Hook):
            raise TypeError(f"Lifecycle.append takes a Hook, got {type(hook).__name__}")
        if self._sealed and self._owner is None:
            raise RuntimeError(
                "hooks can only be appended before the app starts "
                "(while a provider is built, or before App.start())"
            )
        self._hooks.setdefault(self._owner, []).append(hook)

    def hooks(self, owner: str | None) -> Sequence[Hook]:
        """Hooks appended while ``owner`` was built (None: appended outside any build)."""
        return self._hooks.get(owner, ())

    @property
    def owner(self) -> str | None:
        """The provider being built now (hooks appended now belong to it), or None."""
        return self._owner

    def building(self, owner: str) -> AbstractContextManager[None]:
        """``with lifecycle.building(name):``: hooks appended inside belong to ``name``."""
        self._owner = owner
        return self._scope

    def _leave(self) -> None:
        self._owner = None

    def seal(self) -> None:
        """The app is built: from now on hooks can only be appended while a provider is."""
        self._sealed = True

    def shared(self, name: str, make: Callable[[], T], hook: Callable[[T], Hook]) -> T:
        """The app's one ``name`` object, made by ``make`` when first asked for.

        Ask while a provider is built: that provider then needs the object. Its hook,
        ``hook(obj)``, runs in a node of its own, ``<name>``, which needs nothing and
        is needed by every provider that asked: it starts as early as the start walk
        allows and stops after the last of them. Raises RuntimeError outside a build.
        """
        owner = self._owner
        if owner is None:
            raise RuntimeError(f"Lifecycle.shared({name!r}): ask while a provider is built")
        node = self._shared.get(name)
        if node is None:
            value = make()
            node = self._shared[name] = SharedNode(f"<{name}>", value, hook(value))
        node.users[owner] = None
        return cast(T, node.value)

    def find_shared(self, name: str) -> object | None:
        """The object `shared` made for ``name``; None while nothing asked for it."""
        node = self._shared.get(name)
        return node.value if node is not None else None

    def shared_nodes(self) -> Sequence[SharedNode]:
        """The nodes of the shared objects, in the order they were first asked for."""
        return list(self._shared.values())

    def __len__(self) -> int:
        return sum(len(h) for h in self._hooks.values())

    def __repr__(self) -> str:
        return f"<Lifecycle hooks={len(self)}>"


@dataclass(eq=False)
class SharedNode:
    """A shared object's node in the start walk: its hook and the providers needing it."""

    name: str
    value: object
    hook: Hook
    users: dict[str, None] = field(default_factory=dict)
    """The providers that asked for it (a dict: ordered, each once)."""


class _Scope:
    """Ends a `Lifecycle.building` block (a plain class: a provider builds in microseconds)."""

    __slots__ = ("_leave",)

    def __init__(self, leave: Callable[[], None]) -> None:
        self._leave = leave

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self._leave()


class LifecycleProvider(providers.Dependency[Lifecycle]):
    """Declare it in a container to receive the app's `Lifecycle`; the App binds it.

    Unlike ``Provide[...]`` markers it type-checks: it is a ``providers.Dependency[Lifecycle]``.
    A plain ``providers.Dependency(instance_of=Lifecycle)`` is bound the same way.
    """

    def __init__(self) -> None:
        super().__init__(instance_of=Lifecycle)
