"""Reject interceptor objects that connectrpc would silently ignore.

connectrpc picks interceptors with ``isinstance`` checks against runtime Protocols, so an
object with misspelled methods, the async names on a sync client (or the reverse), or
``on_start`` without ``on_end`` is dropped without a word. ``check_interceptors`` turns each
of those into a ``TypeError`` when the chain is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

__all__ = ["ASYNC_NAMES", "SYNC_NAMES", "check_interceptors"]

ASYNC_NAMES = (
    "intercept_unary",
    "intercept_client_stream",
    "intercept_server_stream",
    "intercept_bidi_stream",
    "on_start",
    "on_end",
)
SYNC_NAMES = tuple(f"{name}_sync" for name in ASYNC_NAMES)
# Methods that must be coroutine functions on the async side (the stream ones return
# async iterators and may be plain functions or async generators).
_AWAITED = frozenset({"intercept_unary", "intercept_client_stream", "on_start", "on_end"})


def _describe(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _check_one(obj: object, *, sync: bool) -> None:
    names = SYNC_NAMES if sync else ASYNC_NAMES
    other = ASYNC_NAMES if sync else SYNC_NAMES
    kind = "sync" if sync else "async"
    present = [n for n in names if callable(getattr(obj, n, None))]
    if not present:
        if any(callable(getattr(obj, n, None)) for n in other):
            raise TypeError(
                f"interceptor {_describe(obj)} has only {'async' if sync else 'sync'} method "
                f"names, but it was given to a {kind} client or server; connectrpc would "
                f"ignore it. Define {', '.join(names[:4])} (or {names[4]}/{names[5]})."
            )
        raise TypeError(
            f"interceptor {_describe(obj)} has none of the {kind} interceptor methods "
            f"({', '.join(names)}); connectrpc would ignore it."
        )
    start, end = names[4], names[5]
    if (start in present) != (end in present):
        raise TypeError(
            f"interceptor {_describe(obj)} defines only one of {start}/{end}; a metadata "
            f"interceptor needs both, or connectrpc ignores it."
        )
    for name in present:
        method: Any = getattr(obj, name)
        awaited = name.removesuffix("_sync") in _AWAITED
        if sync and (inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method)):
            raise TypeError(f"{_describe(obj)}.{name} must be a plain function, not async")
        if not sync and awaited and not inspect.iscoroutinefunction(method):
            raise TypeError(f"{_describe(obj)}.{name} must be an async def")


def check_interceptors(interceptors: Iterable[object], *, sync: bool = False) -> list[Any]:
    """Return the interceptors as a list, or raise TypeError for one connectrpc would ignore."""
    result = list(interceptors)
    for obj in result:
        _check_one(obj, sync=sync)
    return result
