"""The runner's framing: each message is a 4-byte big-endian length, then the message bytes."""

from __future__ import annotations

import asyncio
import struct
from typing import BinaryIO, Protocol

_LENGTH = struct.Struct(">I")


class _Message(Protocol):
    def SerializeToString(self) -> bytes: ...


def frame(message: _Message) -> bytes:
    """``message`` serialized, with its length prefix."""
    data = message.SerializeToString()
    return _LENGTH.pack(len(data)) + data


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next message's bytes from a blocking stream; None at a clean end of input."""
    head = stream.read(_LENGTH.size)
    if not head:
        return None
    if len(head) < _LENGTH.size:
        raise EOFError("the input ended inside a length prefix")
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError(f"the input ended inside a {size}-byte message")
    return data


async def read_frame_async(reader: asyncio.StreamReader) -> bytes | None:
    """The next message's bytes from an asyncio stream; None at a clean end of input."""
    try:
        head = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise EOFError("the input ended inside a length prefix") from None
        return None
    (size,) = _LENGTH.unpack(head)
    return await reader.readexactly(size)
