"""The HTTP/1.1 codec shared by the async (`plugin_di.rpc.h1`) and blocking
(`plugin_di.rpc.h1sync`) transports: request heads, response heads, chunk sizes, body
codings, and the keep-alive pool. No I/O here: each transport keeps only its own.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping
from typing import Generic, NamedTuple, Protocol, TypeVar

from pyqwest import Headers, ReadError

from plugin_di.clock import Clock

__all__ = [
    "DECODED_ENCODINGS",
    "IDLE_TIMEOUT",
    "INLINE_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "NO_TRAILERS",
    "Head",
    "HeadersArg",
    "IdlePool",
    "RequestBody",
    "StaleConnection",
    "as_headers",
    "body_decoder",
    "chunk_size",
    "decode_body",
    "decode_stream",
    "decode_stream_sync",
    "encode_head",
    "head_prefix",
    "host_line",
    "parse_head",
    "split_url",
]

IDLE_TIMEOUT = 15.0
"""Seconds a pooled HTTP/1.1 connection may stay idle (servers time out at 20 s or more)."""

DECODED_ENCODINGS = ("gzip", "deflate")
"""What the transports undo; any other content-encoding reaches the caller as it came, as with
pyqwest, so the protocol layer refuses it (connectrpc: INTERNAL "unknown encoding") instead of
the transport failing the call as a network error (UNAVAILABLE)."""

MAX_HEAD_BYTES = 64 * 1024
INLINE_BODY_BYTES = 64 * 1024
"""Bodies up to this size are written before the answer is read (they fit the socket
buffers); larger and streamed ones are written while the answer is watched for."""

NO_BODY_STATUS = frozenset({204, 304})
NO_TRAILERS = Headers()
# "identity" content codings are the default and say nothing: not sending them spares the
# server two headers per call (connectrpc always sets both).
_IDENTITY_DEFAULTS = frozenset({"content-encoding", "accept-encoding"})

HeadersArg = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None
"""Request headers in any form pyqwest's client methods accept."""

RequestBody = bytes | bytearray | memoryview | None


class StaleConnection(Exception):
    """The server closed a pooled connection before answering (safe to retry once)."""


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


# --- request heads -------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def host_line(host: str, port: int, unix: bool) -> str:
    """The ``host:`` header line (on a Unix socket, the URL's host alone)."""
    return f"host: {host}\r\n" if unix else f"host: {host}:{port}\r\n"


def encode_head(
    method: str, target: str, headers: HeadersArg, host: str, length: int | None
) -> bytes:
    """A request head: ``host`` (a `host_line`) unless the headers name one, and
    ``content-length: length`` (``None``: a chunked body follows)."""
    head = head_prefix(method, target, headers, host)
    if length is None:
        return head + b"transfer-encoding: chunked\r\n\r\n"
    if length or method not in ("GET", "HEAD"):
        return head + b"content-length: %d\r\n\r\n" % length
    return head + b"\r\n"


def head_prefix(method: str, target: str, headers: HeadersArg, host: str) -> bytes:
    """A request head without its framing line and final empty line: the part that stays
    the same from call to call of one method (`encode_head` adds the rest)."""
    items: Iterable[tuple[str, str]]
    if headers is None:
        items, has_host = (), False
    elif isinstance(headers, Headers | Mapping):
        items, has_host = headers.items(), "host" in headers
    else:
        items = list(headers)
        has_host = any(name.lower() == "host" for name, _ in items)
    text = f"{method} {target} HTTP/1.1\r\n" + "".join(
        [
            f"{name}: {value}\r\n"
            for name, value in items
            if value != "identity" or name not in _IDENTITY_DEFAULTS
        ]
    )
    if not has_host:
        text += host
    return text.encode("latin-1")


# --- response heads ------------------------------------------------------------------------
class Head:
    """A parsed response head (and the body, when it arrived with the head).

    ``headers`` is built on first use: the unary fast path (`plugin_di.rpc.unary_client`)
    reads only ``content_type`` and ``content_encoding`` of a successful answer.
    """

    __slots__ = (
        "_headers",
        "body",
        "chunked",
        "content_encoding",
        "content_type",
        "keep_alive",
        "length",
        "pairs",
        "status",
    )

    def __init__(
        self,
        status: int,
        pairs: tuple[tuple[str, str], ...],
        keep_alive: bool,
        content_type: str = "",
        content_encoding: str = "",
    ) -> None:
        self.status = status
        self.pairs = pairs
        """The header fields, names lower-cased (shared between heads: never changed)."""
        self.keep_alive = keep_alive
        self.content_type = content_type
        self.content_encoding = content_encoding
        """``""`` when the answer names none"""
        self.body: bytes | None = None
        """None: the body streams (chunked or until close)"""
        self.chunked = False
        self.length: int | None = None
        self._headers: Headers | None = None

    @property
    def headers(self) -> Headers:
        """The header fields as pyqwest ``Headers``."""
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self.pairs)
        return headers


class _Parsed(NamedTuple):
    status: int
    pairs: tuple[tuple[str, str], ...]
    keep_alive: bool
    length: int | None
    chunked: bool
    content_type: str
    content_encoding: str


# Parsed response heads by their bytes: a plugin answers with a handful of distinct heads,
# so most calls skip parsing. Cleared when full.
HEAD_CACHE: dict[bytes, _Parsed] = {}
HEAD_CACHE_SIZE = 256


def parse_head(raw: bytes | bytearray, method: str) -> Head | None:
    """Parse a response head (status line and headers, ending ``\\r\\n\\r\\n``).

    Returns None for an interim 1xx answer, which the real head follows.
    """
    key = bytes(raw)
    parsed = HEAD_CACHE.get(key)
    if parsed is None:
        parsed = _parse_head_text(key.decode("latin-1"))
        if len(HEAD_CACHE) >= HEAD_CACHE_SIZE:
            HEAD_CACHE.clear()
        HEAD_CACHE[key] = parsed
    status = parsed.status
    if 100 <= status < 200 and status != 101:
        return None
    head = Head(
        status, parsed.pairs, parsed.keep_alive, parsed.content_type, parsed.content_encoding
    )
    if method == "HEAD" or status in NO_BODY_STATUS or status < 200:
        head.body = b""
    elif parsed.chunked:
        head.chunked = True
    else:
        head.length = parsed.length
    return head


def _parse_head_text(text: str) -> _Parsed:
    status_line, _, rest = text.partition("\r\n")
    version, _, status_rest = status_line.partition(" ")
    if not version.startswith("HTTP/1."):
        raise ReadError(f"not an HTTP/1.x response: {status_line[:80]!r}")
    status = int(status_rest[:3])
    pairs: list[tuple[str, str]] = []
    length: int | None = None
    chunked = False
    keep_alive = version != "HTTP/1.0"
    content_type = content_encoding = ""
    for line in rest.split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            pairs.append((name, value))
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection" and "close" in value.lower():
                keep_alive = False
            elif name == "content-type":
                content_type = value
            elif name == "content-encoding":
                content_encoding = value
    return _Parsed(
        status, tuple(pairs), keep_alive, length, chunked, content_type, content_encoding
    )


def chunk_size(line: bytes | bytearray) -> int:
    """The size a chunk-size line (``1a;ext\\r\\n``) announces."""
    return int(bytes(line).split(b";", 1)[0].strip(), 16)


# --- body codings --------------------------------------------------------------------------
def decode_body(headers: Headers, body: bytes) -> bytes:
    """A whole body with its gzip or deflate content-encoding undone (as pyqwest does)."""
    encoding = headers.get("content-encoding", "identity")
    if encoding == "gzip":
        return zlib.decompress(body, wbits=zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body  # identity, or an encoding left to the protocol layer (DECODED_ENCODINGS)


def body_decoder(encoding: str) -> zlib._Decompress:
    """A decoder for a streamed body in ``encoding`` (one of `DECODED_ENCODINGS`)."""
    if encoding not in DECODED_ENCODINGS:
        raise ReadError(f"unsupported content-encoding {encoding!r} from the server")
    return zlib.decompressobj(wbits=zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)


async def decode_stream(encoding: str, stream: AsyncGenerator[bytes]) -> AsyncIterator[bytes]:
    """``stream`` with its content-encoding undone, as it arrives."""
    decoder = body_decoder(encoding)
    try:
        async for chunk in stream:
            if out := decoder.decompress(chunk):
                yield out
        if tail := decoder.flush():
            yield tail
    finally:
        await stream.aclose()


def decode_stream_sync(encoding: str, stream: Iterator[bytes]) -> Iterator[bytes]:
    """The blocking `decode_stream`."""
    decoder = body_decoder(encoding)
    try:
        for chunk in stream:
            if out := decoder.decompress(chunk):
                yield out
        if tail := decoder.flush():
            yield tail
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


# --- the keep-alive pool -------------------------------------------------------------------
class Pooled(Protocol):
    """A connection the pool can hold."""

    idle_since: float
    reused: bool

    @property
    def usable(self) -> bool: ...

    def close(self) -> None: ...


_C = TypeVar("_C", bound=Pooled)


class IdlePool(Generic[_C]):
    """Idle keep-alive connections by ``(host, port)``: at most ``max_idle`` each, none
    older than ``idle_timeout`` (on ``clock``). Not locked: a threaded caller locks it."""

    __slots__ = ("_clock", "_idle", "_idle_timeout", "_max_idle", "closed")

    def __init__(self, max_idle: int, idle_timeout: float, clock: Clock) -> None:
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._clock = clock
        self._idle: dict[tuple[str, int], list[_C]] = {}
        self.closed = False

    def __len__(self) -> int:
        return sum(len(conns) for conns in self._idle.values())

    def take(self, key: tuple[str, int]) -> _C | None:
        """A pooled connection still fresh and open (marked ``reused``), else None."""
        pool = self._idle.get(key)
        if pool:
            now = self._clock.now()
            while pool:
                conn = pool.pop()
                if now - conn.idle_since < self._idle_timeout and conn.usable:
                    conn.reused = True
                    return conn
                conn.close()
        return None

    def put(self, key: tuple[str, int], conn: _C, keep_alive: bool) -> None:
        """Keep ``conn`` for the next call to ``key``, or close it (not ``keep_alive``, the
        pool closed, or full). Whether it is still `usable` is the caller's to check."""
        if not keep_alive or self.closed:
            conn.close()
            return
        pool = self._idle.get(key)
        if pool is None:
            pool = self._idle[key] = []
        if len(pool) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = self._clock.now()
        conn.reused = False
        pool.append(conn)

    def clear(self) -> list[_C]:
        """Close the pool to new connections; return the idle ones (for the caller to close)."""
        self.closed = True
        conns = [conn for pool in self._idle.values() for conn in pool]
        self._idle.clear()
        return conns
