"""Pieces shared by the async and blocking HTTP/1.1 transports."""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping

from pyqwest import Headers, ReadError

__all__ = [
    "DECODED_ENCODINGS",
    "IDLE_TIMEOUT",
    "HeadersArg",
    "as_headers",
    "decode_body",
    "decode_stream",
    "split_url",
]

IDLE_TIMEOUT = 15.0
"""Seconds a pooled HTTP/1.1 connection may stay idle (servers time out at 20 s or more)."""

DECODED_ENCODINGS = ("gzip", "deflate")
"""What the transports undo; any other content-encoding reaches the caller as it came, as with
pyqwest, so the protocol layer refuses it (connectrpc: INTERNAL "unknown encoding") instead of
the transport failing the call as a network error (UNAVAILABLE)."""

HeadersArg = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None
"""Request headers in any form pyqwest's client methods accept."""


def as_headers(headers: HeadersArg) -> Headers:
    """``headers`` as a pyqwest ``Headers``."""
    if headers is None:
        return Headers()
    if isinstance(headers, Headers):
        return headers
    return Headers(headers.items() if isinstance(headers, Mapping) else list(headers))


def split_url(url: str) -> tuple[str, int, str]:
    """``http://host:port/path?q`` -> host, port, ``/path?q`` (fast; no urllib)."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        raise ValueError(f"request URL {url!r} has no scheme")
    rest = url[scheme_end + 3 :]
    slash = rest.find("/")
    authority, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if authority.startswith("["):
        host, _, port_text = authority[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = authority.partition(":")
    port = int(port_text) if port_text else (443 if url.startswith("https") else 80)
    return host, port, target


def decode_body(headers: Headers, body: bytes) -> bytes:
    # pyqwest's own transport undoes content-encoding; Connect unary replies use it.
    encoding = headers.get("content-encoding", "identity")
    if encoding == "gzip":
        return zlib.decompress(body, wbits=zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body  # identity, or an encoding left to the protocol layer (DECODED_ENCODINGS)


async def decode_stream(encoding: str, stream: AsyncGenerator[bytes]) -> AsyncIterator[bytes]:
    if encoding not in ("gzip", "deflate"):
        raise ReadError(f"unsupported content-encoding {encoding!r} from the server")
    wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
    decoder = zlib.decompressobj(wbits=wbits)
    try:
        async for chunk in stream:
            if out := decoder.decompress(chunk):
                yield out
        if tail := decoder.flush():
            yield tail
    finally:
        await stream.aclose()
