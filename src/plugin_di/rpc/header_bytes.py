"""Request headers (and query strings) whose bytes are not UTF-8: the refusal each one gets.

connectrpc 0.13 decodes every request header, and a GET's query string, as UTF-8 before any
interceptor runs; a byte that does not decode raised ``UnicodeDecodeError``, which went out as
HTTP 500 ``unknown`` with Python's message. HTTP allows such bytes (obs-text), so clients and
fuzzers can send them. `undecodable` finds the first offending header, and `refusal` says
what it gets: HTTP 415 for a content type (the Connect protocol's answer to an unsupported
media type, which connectrpc and connect-go give in every protocol), UNAUTHENTICATED for a
credential, INVALID_ARGUMENT for anything else. The message names the header, never its
bytes. A header of plain ASCII, the usual case, costs one ``isascii`` check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from connectrpc.code import Code

__all__ = [
    "CREDENTIAL_HEADERS",
    "UNSUPPORTED_MEDIA_TYPE_HEADERS",
    "HeaderRefusal",
    "check_request_bytes",
    "refusal",
    "undecodable",
]

CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-plugin-runtime-id", b"x-api-key"})
"""Headers carrying credentials: bytes there that do not decode are a bad credential."""

UNSUPPORTED_MEDIA_TYPE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"accept-post", b"application/json, application/proto")
]
"""connectrpc's headers on its 415 answer."""


@dataclass(frozen=True, slots=True)
class HeaderRefusal:
    """How to refuse a request: ``code`` in the caller's protocol, or HTTP 415 when it is None."""

    code: Code | None
    message: str


def _decodes(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def undecodable(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, bool] | None:
    """The first header that is not UTF-8, as (lower-case name, whether the name itself is
    bad); None when every header decodes."""
    for name, value in headers:
        if name.isascii() and value.isascii():
            continue
        if not _decodes(name):
            return bytes(name), True
        if not _decodes(value):
            return bytes(name).lower(), False
    return None


def refusal(name: bytes, bad_name: bool) -> HeaderRefusal:
    """The answer to a request whose header ``name`` (lower case) does not decode."""
    if bad_name:
        return HeaderRefusal(Code.INVALID_ARGUMENT, "a request header name is not valid UTF-8")
    shown = name.decode("ascii", "replace")
    if name == b"content-type":
        return HeaderRefusal(None, "content-type is not valid UTF-8")
    if name in CREDENTIAL_HEADERS:
        return HeaderRefusal(Code.UNAUTHENTICATED, f"{shown} header is not valid UTF-8")
    return HeaderRefusal(Code.INVALID_ARGUMENT, f"{shown} header is not valid UTF-8")


def check_request_bytes(
    headers: Iterable[tuple[bytes, bytes]], query: bytes = b""
) -> HeaderRefusal | None:
    """The refusal a request with these headers and query string gets; None: it decodes."""
    found = undecodable(headers)
    if found is not None:
        return refusal(*found)
    if not _decodes(query):
        return HeaderRefusal(Code.INVALID_ARGUMENT, "query string is not valid UTF-8")
    return None
