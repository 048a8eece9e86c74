"""One conformance call on a generated client, as upstream testing_clients.md describes: send
the requests (with their delays), read the responses, cancel when and how the case says (async
clients; the blocking ones cannot cancel)."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import Headers
from google.protobuf.message import Message

from conformance.gen import config_pb2, service_pb2

BEFORE_CLOSE_SEND = "before_close_send"
AFTER_CLOSE_SEND = "after_close_send_ms"
AFTER_RESPONSES = "after_num_responses"
BLOCKING_WAIT_SECONDS = 30.0
"""How long a blocking full-duplex request stream waits for its next message at most."""

REQUEST_TYPES: dict[str, type[Message]] = {
    "Unary": service_pb2.UnaryRequest,
    "IdempotentUnary": service_pb2.IdempotentUnaryRequest,
    "Unimplemented": service_pb2.UnimplementedRequest,
    "ServerStream": service_pb2.ServerStreamRequest,
    "ClientStream": service_pb2.ClientStreamRequest,
    "BidiStream": service_pb2.BidiStreamRequest,
}


def _unpack(packed: Any, method: str) -> Message:
    cls = REQUEST_TYPES.get(method)
    if cls is None:
        raise ValueError(f"unknown method {method!r}")
    if packed.TypeName() != cls.DESCRIPTOR.full_name:
        raise ValueError(f"{method} takes {cls.DESCRIPTOR.full_name}, not {packed.TypeName()}")
    message = cls()
    packed.Unpack(message)
    return message


async def _pause(milliseconds: int) -> None:
    if milliseconds:
        await asyncio.sleep(milliseconds / 1000)


@dataclass
class Call:
    """What the caller sends and when it cancels; what it received."""

    method: str
    full_duplex: bool
    use_get: bool
    messages: list[Message]
    request_delay_ms: int = 0
    timeout_ms: int | None = None
    cancel: str | None = None
    cancel_after_ms: int = 0
    cancel_after_responses: int = 0
    payloads: list[Any] = field(default_factory=list)
    unsent: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the send side is closed (at once for unary and server-stream calls)."""
    cancel_call: Callable[[], object] = lambda: None

    @classmethod
    def from_case(cls, case: Any) -> Call:
        """The call a ClientCompatRequest describes."""
        call = cls(
            method=case.method,
            full_duplex=case.stream_type == config_pb2.STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM,
            use_get=case.use_get_http_method,
            messages=[_unpack(m, case.method) for m in case.request_messages],
            request_delay_ms=case.request_delay_ms,
            timeout_ms=case.timeout_ms if case.HasField("timeout_ms") else None,
        )
        if case.HasField("cancel"):
            # No timing given means: right after closing the send side.
            call.cancel = case.cancel.WhichOneof("cancel_timing") or AFTER_CLOSE_SEND
            call.cancel_after_ms = case.cancel.after_close_send_ms
            call.cancel_after_responses = case.cancel.after_num_responses
        return call

    def received(self, payload: Any) -> None:
        """Record a response's payload; cancel if the case says so after this many."""
        self.payloads.append(payload)
        if self.cancel == AFTER_RESPONSES and len(self.payloads) == self.cancel_after_responses:
            self.cancel_call()

    def close_send(self) -> None:
        """The send side closes now, or the call is cancelled instead, as the case says."""
        if self.cancel == BEFORE_CLOSE_SEND:
            self.cancel_call()
        self.closed.set()

    async def requests(self) -> AsyncIterator[Message]:
        """The request stream: each message after its delay, then the close."""
        for message in self.messages:
            await _pause(self.request_delay_ms)
            yield message
        self.close_send()


async def _unary(stub: Any, call: Call, headers: Headers) -> None:
    message, timeout = call.messages[0], call.timeout_ms
    pending: Awaitable[Any]
    if call.method == "IdempotentUnary":
        pending = stub.idempotent_unary(
            message, headers=headers, timeout_ms=timeout, use_get=call.use_get
        )
    elif call.method == "Unimplemented":
        pending = stub.unimplemented(message, headers=headers, timeout_ms=timeout)
    else:
        pending = stub.unary(message, headers=headers, timeout_ms=timeout)
    call.closed.set()
    response = await pending
    if call.method != "Unimplemented":
        call.payloads.append(response.payload)


async def _server_stream(stub: Any, call: Call, headers: Headers) -> None:
    responses = stub.server_stream(call.messages[0], headers=headers, timeout_ms=call.timeout_ms)
    call.closed.set()
    async for response in responses:
        call.received(response.payload)


async def _client_stream(stub: Any, call: Call, headers: Headers) -> None:
    response = await stub.client_stream(
        call.requests(), headers=headers, timeout_ms=call.timeout_ms
    )
    call.payloads.append(response.payload)


async def _half_duplex(stub: Any, call: Call, headers: Headers) -> None:
    responses = stub.bidi_stream(call.requests(), headers=headers, timeout_ms=call.timeout_ms)
    async for response in responses:
        call.received(response.payload)


async def _full_duplex(stub: Any, call: Call, headers: Headers) -> None:
    """Send one request, read one response, and so on; then close and read the rest."""
    outbox: asyncio.Queue[Message | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[Message]:
        while (message := await outbox.get()) is not None:
            yield message

    stream = stub.bidi_stream(requests(), headers=headers, timeout_ms=call.timeout_ms)
    responses = aiter(stream)
    for sent, message in enumerate(call.messages, start=1):
        await _pause(call.request_delay_ms)
        outbox.put_nowait(message)
        try:
            response = await anext(responses)
        except StopAsyncIteration:
            break
        except ConnectError:
            call.unsent = len(call.messages) - sent
            raise
        call.received(response.payload)
    call.close_send()
    outbox.put_nowait(None)
    async for response in responses:
        call.received(response.payload)


_Handler = Callable[[Any, Call, Headers], Coroutine[Any, Any, None]]


def _handler(call: Call) -> _Handler:
    if call.method == "BidiStream":
        return _full_duplex if call.full_duplex else _half_duplex
    handlers: dict[str, _Handler] = {"ServerStream": _server_stream, "ClientStream": _client_stream}
    return handlers.get(call.method, _unary)


async def invoke(stub: Any, call: Call, headers: Headers) -> None:
    """Make ``call`` on ``stub``; raise its ConnectError if it fails (CANCELED if cancelled)."""
    work = asyncio.create_task(_handler(call)(stub, call, headers))
    call.cancel_call = work.cancel

    async def cancel_after_close() -> None:
        await call.closed.wait()
        await _pause(call.cancel_after_ms)
        work.cancel()

    timer = asyncio.create_task(cancel_after_close()) if call.cancel == AFTER_CLOSE_SEND else None
    try:
        await work
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # this caller is being cancelled, not just the call
        # The cancellation landed outside the client library (in a delay or the request queue).
        raise ConnectError(Code.CANCELED, "the call was cancelled") from None
    finally:
        if timer is not None:
            timer.cancel()


# --- the blocking client ---------------------------------------------------------------------


def _requests_blocking(call: Call) -> Iterator[Message]:
    for message in call.messages:
        if call.request_delay_ms:
            time.sleep(call.request_delay_ms / 1000)
        yield message


def _full_duplex_blocking(stub: Any, call: Call, headers: Headers) -> None:
    outbox: queue.Queue[Message | None] = queue.Queue()

    def requests() -> Iterator[Message]:
        while (message := outbox.get(timeout=BLOCKING_WAIT_SECONDS)) is not None:
            yield message

    responses = iter(stub.bidi_stream(requests(), headers=headers, timeout_ms=call.timeout_ms))
    for sent, message in enumerate(call.messages, start=1):
        if call.request_delay_ms:
            time.sleep(call.request_delay_ms / 1000)
        outbox.put(message)
        try:
            response = next(responses)
        except StopIteration:
            break
        except ConnectError:
            call.unsent = len(call.messages) - sent
            raise
        call.received(response.payload)
    outbox.put(None)
    for response in responses:
        call.received(response.payload)


def invoke_blocking(stub: Any, call: Call, headers: Headers) -> None:
    """Make ``call`` on a generated ``XxxClientSync``; raise its ConnectError if it fails.

    The blocking API has no way to cancel a call in flight: a case that asks for a
    cancellation is refused with ValueError.
    """
    if call.cancel is not None:
        raise ValueError("the blocking client cannot cancel a call in flight")
    options: dict[str, Any] = {"headers": headers, "timeout_ms": call.timeout_ms}
    if call.method == "ServerStream":
        for response in stub.server_stream(call.messages[0], **options):
            call.received(response.payload)
    elif call.method == "ClientStream":
        response = stub.client_stream(_requests_blocking(call), **options)
        call.payloads.append(response.payload)
    elif call.method == "BidiStream" and call.full_duplex:
        _full_duplex_blocking(stub, call, headers)
    elif call.method == "BidiStream":
        for response in stub.bidi_stream(_requests_blocking(call), **options):
            call.received(response.payload)
    elif call.method == "IdempotentUnary":
        response = stub.idempotent_unary(call.messages[0], use_get=call.use_get, **options)
        call.payloads.append(response.payload)
    elif call.method == "Unimplemented":
        stub.unimplemented(call.messages[0], **options)
    else:
        call.payloads.append(stub.unary(call.messages[0], **options).payload)
