"""Server metadata interceptor rejecting oversized or malformed request headers."""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

from plugin_di.rpc.validation import MAX_HEADER_LIST_BYTES, MAX_HEADER_VALUE_BYTES, validate_headers

__all__ = ["HeaderLimits"]


class HeaderLimits:
    """INVALID_ARGUMENT ``headers: <rule>`` when the request headers break the size rules.

    Runs before the body is read when it leads the server's interceptor list.
    """

    def __init__(
        self,
        *,
        max_total_bytes: int = MAX_HEADER_LIST_BYTES,
        max_value_bytes: int = MAX_HEADER_VALUE_BYTES,
    ) -> None:
        self.max_total_bytes = max_total_bytes
        self.max_value_bytes = max_value_bytes

    def check(self, ctx: RequestContext[Any, Any]) -> None:
        validate_headers(
            ctx.request_headers.allitems(),
            max_total_bytes=self.max_total_bytes,
            max_value_bytes=self.max_value_bytes,
        )

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        self.check(ctx)

    async def on_end(
        self, token: None, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        return None

    def on_start_sync(self, ctx: RequestContext[Any, Any]) -> None:
        self.check(ctx)

    def on_end_sync(
        self, token: None, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        return None
