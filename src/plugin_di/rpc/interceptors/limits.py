"""Server metadata interceptor rejecting oversized or malformed request headers."""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

from plugin_di.rpc.before_call import BeforeCall
from plugin_di.rpc.validation import MAX_HEADER_LIST_BYTES, MAX_HEADER_VALUE_BYTES, validate_headers

__all__ = ["HeaderLimits"]


class HeaderLimits(BeforeCall):
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

    def before(self, ctx: RequestContext[Any, Any]) -> None:
        validate_headers(
            ctx.request_headers.allitems(),
            max_total_bytes=self.max_total_bytes,
            max_value_bytes=self.max_value_bytes,
        )
