"""Codecs and compressions whose failures reach the caller without exception text.

connectrpc 0.13 reports a request that does not decode as ``INVALID_ARGUMENT "unmarshal
message: {exc}"`` and one that does not decompress as ``"decompress: {exc}"``: the text of
whatever the parser raised, such as ``Failed to parse JSON: TypeError: 'NoneType' object is
not iterable`` or ``'utf-8' codec can't decode byte 0x89``; a response that does not encode
(a handler returning the wrong type) went out as UNKNOWN with its exception's text.
`quiet_app` wraps the codecs and compressions of a generated ASGI app so that each failure
is a `ConnectError` with a fixed message (connectrpc passes a ConnectError on unchanged):
INVALID_ARGUMENT naming the format and the expected message type for a request, INTERNAL
"internal error" for a response. The detail goes to the server's log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di._compat.connectrpc import (
    app_codecs,
    app_compressions,
    replace_app_codecs,
    replace_app_compressions,
)
from plugin_di.rpc.errors import INTERNAL_MESSAGE

__all__ = ["MAX_JSON_DEPTH", "QuietCodec", "QuietCompression", "json_too_deep", "quiet_app"]

log = logging.getLogger(__name__)


def _type_name(message_class: Any) -> str:
    descriptor = getattr(message_class, "DESCRIPTOR", None)  # google-protobuf
    if descriptor is not None:
        return str(descriptor.full_name)
    desc = getattr(message_class, "desc", None)  # protobuf-py
    if callable(desc):
        try:
            return str(desc().type_name)
        except Exception:  # naming the type is best effort
            pass
    return str(getattr(message_class, "__name__", "message"))


MAX_JSON_DEPTH = 100
"""Deepest JSON nesting a request may have (google.protobuf's json_format has the same)."""

_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_too_deep(data: bytes | bytearray, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON ``data`` nests arrays and objects deeper than ``limit`` (strings are
    skipped). Cheap when it cannot: fewer brackets than the limit need no scan."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    for token in _JSON_TOKEN.finditer(data):
        mark = token.group()
        if mark in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif mark in (b"]", b"}"):
            depth -= 1
    return False


class QuietCodec:
    """A connectrpc codec whose errors carry a fixed message.

    A JSON request nested deeper than `MAX_JSON_DEPTH` is refused before it is parsed:
    protobuf-py's JSON parser (which the reflection services use) recurses without a
    bound, and a request nested 100,000 deep crashed the whole process.
    """

    __slots__ = ("_inner", "_json", "_name")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._name: str = inner.name()
        self._json = "json" in self._name

    def name(self) -> str:
        return self._name

    def encode(self, message: Any) -> bytes:
        try:
            return bytes(self._inner.encode(message))
        except ConnectError:
            raise
        except Exception:
            log.exception("encoding a %s response failed", type(message).__name__)
            raise ConnectError(Code.INTERNAL, INTERNAL_MESSAGE) from None

    def decode(self, data: bytes | bytearray, message_class: Any) -> Any:
        if self._json and json_too_deep(data):
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"unmarshal message: JSON nested deeper than {MAX_JSON_DEPTH} levels",
            )
        try:
            return self._inner.decode(data, message_class)
        except ConnectError:
            raise
        except Exception as exc:
            name = _type_name(message_class)
            log.debug("a %s request did not decode as %s: %s", self._name, name, exc)
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"unmarshal message: the request is not a valid {self._name} {name}",
            ) from None


class QuietCompression:
    """A connectrpc compression whose decompression errors carry a fixed message."""

    __slots__ = ("_inner", "_name")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._name: str = inner.name()

    def name(self) -> str:
        return self._name

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return bytes(self._inner.compress(data))

    def decompress(
        self, data: bytes | bytearray | memoryview, read_max_bytes: int | None = None
    ) -> bytes:
        try:
            return bytes(self._inner.decompress(data, read_max_bytes))
        except ConnectError:
            raise  # a message over the limit: RESOURCE_EXHAUSTED
        except Exception as exc:
            log.debug("a %s request body did not decompress: %s", self._name, exc)
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"decompress: the request is not valid {self._name}"
            ) from None


def quiet_app(app: object) -> None:
    """Wrap the codecs and compressions of a connectrpc 0.13 ASGI app (in place; twice is
    harmless). Apps without them are left alone."""
    codecs = app_codecs(app)
    if codecs is not None:
        replace_app_codecs(
            app,
            {
                name: codec if isinstance(codec, QuietCodec) else QuietCodec(codec)
                for name, codec in codecs.items()
            },
        )
    compressions = app_compressions(app)
    if compressions is not None:
        # A new dict: connectrpc shares its default one between apps. Identity stays itself:
        # connectrpc recognizes it by its class, and it cannot fail but for the size limit.
        replace_app_compressions(
            app,
            {
                name: c
                if name == "identity" or isinstance(c, QuietCompression)
                else QuietCompression(c)
                for name, c in compressions.items()
            },
        )
