"""A base for interceptors that only look at (or stamp) headers before a call.

connectrpc runs metadata interceptors (``on_start`` / ``on_end``) for every kind
of RPC, before a server reads the request body, which is the place for header
checks such as auth, rate limits and size limits. Subclasses write one
``before(ctx)`` and get both the async and the ``*_sync`` method names
connectrpc looks for.
"""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

__all__ = ["BeforeCall"]


class BeforeCall:
    """Runs ``before(ctx)`` at the start of every call, async or sync; nothing at the end."""

    def before(self, ctx: RequestContext[Any, Any]) -> None:
        """Check or stamp ``ctx``'s headers; raise a ConnectError to refuse the call."""
        raise NotImplementedError

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        self.before(ctx)

    async def on_end(
        self, token: None, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        return None

    def on_start_sync(self, ctx: RequestContext[Any, Any]) -> None:
        self.before(ctx)

    def on_end_sync(
        self, token: None, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        return None
