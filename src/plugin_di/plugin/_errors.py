"""Server-side error hygiene: no Python exception text crosses the wire.

connectrpc answers an exception that is not a ConnectError with ``str(exc)``
as the message. `InternalErrors` (first in every plugin's interceptor chain)
logs such an exception with its traceback on the plugin's stderr and answers
INTERNAL with a generic message instead. `client_error` is the same rule for
direct dispatch, which has no wire to protect but must look the same.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.request import RequestContext
from protobuf.wkt import Any as AnyPb

log = logging.getLogger("plugin_di.plugin")

INTERNAL_MESSAGE = "internal error"


def _where(ctx: RequestContext[Any, Any]) -> str:
    return f"/{ctx.method.service_name}/{ctx.method.name}"


def internal_error(exc: BaseException, where: str) -> ConnectError:
    """Log ``exc`` with its traceback and return the generic INTERNAL error."""
    log.error("unhandled %s in %s", type(exc).__name__, where, exc_info=exc)
    return ConnectError(Code.INTERNAL, INTERNAL_MESSAGE)


def client_error(exc: BaseException, where: str) -> ConnectError:
    """What a caller sees for a server-side exception, as the HTTP path shows it.

    A ConnectError keeps its code, message and details (as a fresh object,
    details as packed Any, the way a remote client decodes them).
    """
    if isinstance(exc, ConnectError):
        details = [
            ErrorDetail(AnyPb(type_url="type.googleapis.com/" + d.type_name, value=d.message_bytes))
            for d in exc.details
        ]
        return ConnectError(exc.code, exc.message, details)
    return internal_error(exc, where)


class InternalErrors:
    """Server interceptor: exceptions other than ConnectError become a generic INTERNAL."""

    async def intercept_unary(
        self,
        call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]],
        request: Any,
        ctx: RequestContext[Any, Any],
    ) -> Any:
        try:
            return await call_next(request, ctx)
        except ConnectError:
            raise
        except Exception as exc:
            raise internal_error(exc, _where(ctx)) from None

    async def intercept_client_stream(
        self,
        call_next: Callable[[AsyncIterator[Any], RequestContext[Any, Any]], Awaitable[Any]],
        request: AsyncIterator[Any],
        ctx: RequestContext[Any, Any],
    ) -> Any:
        try:
            return await call_next(request, ctx)
        except ConnectError:
            raise
        except Exception as exc:
            raise internal_error(exc, _where(ctx)) from None

    async def intercept_server_stream(
        self,
        call_next: Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]],
        request: Any,
        ctx: RequestContext[Any, Any],
    ) -> AsyncIterator[Any]:
        responses = call_next(request, ctx)
        try:
            async for response in responses:
                yield response
        except ConnectError:
            raise
        except Exception as exc:
            raise internal_error(exc, _where(ctx)) from None
        finally:
            aclose = getattr(responses, "aclose", None)
            if aclose is not None:
                await aclose()

    async def intercept_bidi_stream(
        self,
        call_next: Callable[[AsyncIterator[Any], RequestContext[Any, Any]], AsyncIterator[Any]],
        request: AsyncIterator[Any],
        ctx: RequestContext[Any, Any],
    ) -> AsyncIterator[Any]:
        responses = call_next(request, ctx)
        try:
            async for response in responses:
                yield response
        except ConnectError:
            raise
        except Exception as exc:
            raise internal_error(exc, _where(ctx)) from None
        finally:
            aclose = getattr(responses, "aclose", None)
            if aclose is not None:
                await aclose()
