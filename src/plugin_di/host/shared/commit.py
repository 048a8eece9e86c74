"""The server interceptor that answers a host RPC only once its writes are in the store."""

from __future__ import annotations

from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.host.shared.engine import GuardFailed, StoreUnavailable
from plugin_di.host.shared.state import SharedState


class CommitWrites:
    """Metadata interceptor: at the end of a call that wrote to the replica, wait for the
    store to take the writes. UNAVAILABLE when it cannot (the caller retries, on this host
    or another); UNAUTHENTICATED when the caller's lease ended meanwhile."""

    def __init__(self, state: SharedState) -> None:
        self._state = state

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        return None

    async def on_end(self, token: None, ctx: RequestContext[Any, Any],
                     error: Exception | None) -> None:  # fmt: skip
        if not self._state.pending:
            return
        try:
            await self._state.flush()
        except GuardFailed:
            if error is None:
                raise ConnectError(
                    Code.UNAUTHENTICATED,
                    "your runtime identity ended (its lease ran out): handshake with a host "
                    "again and register anew",
                ) from None
        except StoreUnavailable:
            if error is None:
                raise ConnectError(
                    Code.UNAVAILABLE,
                    "the host cannot reach its shared store: retry, on this host or another",
                ) from None

    def on_start_sync(self, ctx: RequestContext[Any, Any]) -> None:
        return None

    def on_end_sync(self, token: None, ctx: RequestContext[Any, Any],
                    error: Exception | None) -> None:  # fmt: skip
        return None
