"""Server-side error sanitizing, and error details for google-protobuf messages.

connectrpc answers an unhandled handler exception with ``str(exc)`` as the message, which can
leak secrets to the caller. ``SanitizeErrors`` turns every exception that is not a
``ConnectError`` into ``ConnectError(Code.INTERNAL, "internal error")`` and logs the detail,
with its traceback, on the server. ``ConnectError`` passes unchanged: it is the handler's
deliberate answer.

With google-protobuf generated code, connectrpc cannot pack an error detail itself (it expects
protobuf-py messages): ``pack_detail`` and ``unpack_detail`` do it by hand.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from protobuf.wkt import Any as AnyDetail

__all__ = ["INTERNAL_MESSAGE", "GoogleMessage", "SanitizeErrors", "pack_detail", "unpack_detail"]

INTERNAL_MESSAGE = "internal error"
TYPE_URL_PREFIX = "type.googleapis.com/"

log = logging.getLogger(__name__)

_REQ = TypeVar("_REQ")
_RES = TypeVar("_RES")
_M = TypeVar("_M", bound="GoogleMessage")
_M_co = TypeVar("_M_co", bound="GoogleMessage", covariant=True)


class SanitizeErrors:
    """Server interceptor: unexpected exceptions become INTERNAL with a generic message.

    Covers unary, server-streaming, client-streaming and bidi methods, async and sync (the
    ``*_sync`` names are what connectrpc's WSGI apps look for). Put it first in the chain so
    that it also covers the other interceptors.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def _sanitize(self, exc: Exception, ctx: RequestContext[Any, Any]) -> ConnectError:
        method = ctx.method
        self._log.error(
            "%s/%s failed; the caller got INTERNAL: %s: %s",
            method.service_name,
            method.name,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        return ConnectError(Code.INTERNAL, INTERNAL_MESSAGE)

    async def intercept_unary(
        self,
        call_next: Callable[[_REQ, RequestContext[Any, Any]], Awaitable[_RES]],
        request: _REQ,
        ctx: RequestContext[Any, Any],
        /,
    ) -> _RES:
        """Run a unary call, sanitizing what it raises."""
        try:
            return await call_next(request, ctx)
        except ConnectError:
            raise
        except Exception as exc:
            raise self._sanitize(exc, ctx) from None

    async def intercept_client_stream(
        self,
        call_next: Callable[[AsyncIterator[_REQ], RequestContext[Any, Any]], Awaitable[_RES]],
        request: AsyncIterator[_REQ],
        ctx: RequestContext[Any, Any],
        /,
    ) -> _RES:
        """Run a client-streaming call, sanitizing what it raises."""
        try:
            return await call_next(request, ctx)
        except ConnectError:
            raise
        except Exception as exc:
            raise self._sanitize(exc, ctx) from None

    async def intercept_server_stream(
        self,
        call_next: Callable[[_REQ, RequestContext[Any, Any]], AsyncIterator[_RES]],
        request: _REQ,
        ctx: RequestContext[Any, Any],
        /,
    ) -> AsyncIterator[_RES]:
        """Run a server-streaming call, sanitizing what it raises, also mid-stream."""
        try:
            async for message in call_next(request, ctx):
                yield message
        except ConnectError:
            raise
        except Exception as exc:
            raise self._sanitize(exc, ctx) from None

    async def intercept_bidi_stream(
        self,
        call_next: Callable[[AsyncIterator[_REQ], RequestContext[Any, Any]], AsyncIterator[_RES]],
        request: AsyncIterator[_REQ],
        ctx: RequestContext[Any, Any],
        /,
    ) -> AsyncIterator[_RES]:
        """Run a bidi-streaming call, sanitizing what it raises, also mid-stream."""
        try:
            async for message in call_next(request, ctx):
                yield message
        except ConnectError:
            raise
        except Exception as exc:
            raise self._sanitize(exc, ctx) from None

    def intercept_unary_sync(
        self,
        call_next: Callable[[_REQ, RequestContext[Any, Any]], _RES],
        request: _REQ,
        ctx: RequestContext[Any, Any],
        /,
    ) -> _RES:
        """Run a sync unary call, sanitizing what it raises."""
        try:
            return call_next(request, ctx)
        except ConnectError:
            raise
        except Exception as exc:
            raise self._sanitize(exc, ctx) from None

    def intercept_client_stream_sync(
        self,
        call_next: Callable[[Iterator[_REQ], RequestContext[Any, Any]], _RES],
        request: Iterator[_REQ],
        ctx: RequestContext[Any, Any],
        /,
    ) -> _RES:
        """Run a sync client-streaming call, sanitizing what it raises."""
        try:
            return call_next(request, ctx)
        except ConnectError:
            raise
        except Exception as exc:
            raise self._sanitize(exc, ctx) from None

    def intercept_server_stream_sync(
        self,
        call_next: Callable[[_REQ, RequestContext[Any, Any]], Iterator[_RES]],
        request: _REQ,
        ctx: RequestContext[Any, Any],
        /,
    ) -> Iterator[_RES]:
        """Run a sync server-streaming call, sanitizing what it raises."""
        try:
            yield from call_next(request, ctx)
        except ConnectError:
            raise
        except Exception as exc:
            raise self._sanitize(exc, ctx) from None

    def intercept_bidi_stream_sync(
        self,
        call_next: Callable[[Iterator[_REQ], RequestContext[Any, Any]], Iterator[_RES]],
        request: Iterator[_REQ],
        ctx: RequestContext[Any, Any],
        /,
    ) -> Iterator[_RES]:
        """Run a sync bidi-streaming call, sanitizing what it raises."""
        try:
            yield from call_next(request, ctx)
        except ConnectError:
            raise
        except Exception as exc:
            raise self._sanitize(exc, ctx) from None


class _Descriptor(Protocol):
    @property
    def full_name(self) -> str: ...


class GoogleMessage(Protocol):
    """The parts of a google-protobuf message that packing a detail needs."""

    DESCRIPTOR: Any

    def SerializeToString(self) -> bytes: ...


class _GoogleMessageClass(Protocol[_M_co]):
    DESCRIPTOR: Any

    def FromString(self, data: bytes, /) -> _M_co: ...


def pack_detail(message: GoogleMessage) -> AnyDetail:
    """Pack a google-protobuf message as a ``ConnectError`` detail.

    ``raise ConnectError(Code.FAILED_PRECONDITION, "...", details=[pack_detail(msg)])``
    """
    return AnyDetail(
        type_url=TYPE_URL_PREFIX + message.DESCRIPTOR.full_name,
        value=message.SerializeToString(),
    )


def unpack_detail(error: ConnectError, cls: _GoogleMessageClass[_M]) -> _M | None:
    """The first detail of ``error`` that is a ``cls`` message, decoded; None if there is none."""
    name = cls.DESCRIPTOR.full_name
    for detail in error.details:
        if detail.type_name == name:
            return cls.FromString(detail.message_bytes)
    return None
