"""A fuzz harness for a served surface: hypothesis inputs in every framing, sent raw.

`FuzzTarget` names what is attacked: a `Surface` (URL, server kind, HTTP/2 or not, a valid
call), its methods, and headers every input carries (credentials, so inputs reach the code
behind authentication). `framings` maps each framing's name to a hypothesis strategy of
`FuzzInput`s; `Fuzzer.send` sends one and classifies the answer (`Figures`):

- every answer is counted by its code (``ok``, ``invalid_argument``, ``http-415``, ...);
- a *crash* is an answer the server should never give: ``unknown`` or ``internal`` (an
  unhandled exception, even one sanitized), an HTTP 5xx other than 503 and 504, or a
  well-formed request left without an answer;
- a *leak* is exception text in an answer (`wire.leaks`);
- every ``check_every`` inputs, and after each batch, the surface's valid call must succeed.

The servers run in a `Portal` (an event loop in a thread), so hypothesis drives the inputs
from a plain synchronous test. The same harness takes any URL and server kind: a test for
a new server builds a `Surface` for it and runs the framings against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import re
import struct
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import descriptor_pool, message_factory
from hypothesis import strategies as st

from .calls import content_type, envelope
from .servers import Method, Surface
from .wire import (
    Endpoint,
    H2Request,
    NoAnswer,
    Reply,
    answer_code,
    answer_message,
    h1_exchange,
    h1_request,
    h2_exchange,
    leaks,
)

T = TypeVar("T")
Headers = list[tuple[bytes, bytes]]

# A sanitized unhandled exception; other INTERNAL answers are protocol errors the Connect
# protocol gives that code (a compressed flag without an encoding, say).
INTERNAL_MESSAGE = "internal error"
WITHIN = 5.0  # seconds an answer may take


# --- running servers beside a synchronous test ---------------------------------------------


class Portal:
    """An event loop in a daemon thread: servers live in it, tests hand it coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], within: float = 60.0) -> T:
        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(within)

    @contextlib.contextmanager
    def entered(self, manager: contextlib.AbstractAsyncContextManager[T]) -> Iterator[T]:
        """Enter an async context manager in the loop, for the block's duration."""
        value = self.run(manager.__aenter__())
        try:
            yield value
        finally:
            self.run(manager.__aexit__(None, None, None))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


# --- what is sent --------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzInput:
    """One request: over HTTP/2 or HTTP/1.1, a method, path, headers and body.

    ``well_formed``: valid HTTP (whatever its RPC content), so the server owes an answer.
    """

    http2: bool
    path: bytes
    headers: Headers
    body: bytes
    method: bytes = b"POST"
    protocol: str = "connect"  # how to read the answer (see `wire.answer_code`)
    well_formed: bool = True


def _no_headers(method: Method) -> Headers:
    return []


@dataclass(frozen=True)
class FuzzTarget:
    """A surface under attack, the methods it serves, the headers sent with each method's
    inputs (credentials, say), and its message limit."""

    surface: Surface
    methods: Sequence[Method]
    headers_for: Callable[[Method], Headers] = _no_headers
    max_message_bytes: int = 4 * 1024 * 1024


# --- the framings --------------------------------------------------------------------------


def _protocols(target: FuzzTarget) -> list[str]:
    return ["connect", "grpc-web", "grpc"] if target.surface.h2 else ["connect", "grpc-web"]


def _wire(protocol: str, method: Method) -> str:
    return "connect-stream" if protocol == "connect" and not method.unary else protocol


@st.composite
def _route(draw: st.DrawFn, target: FuzzTarget) -> tuple[Method, str, bool]:
    method = draw(st.sampled_from(list(target.methods)))
    protocol = draw(st.sampled_from(_protocols(target)))
    http2 = protocol == "grpc" or (target.surface.h2 and draw(st.booleans()))
    return method, protocol, http2


def _input(
    target: FuzzTarget,
    method: Method,
    protocol: str,
    http2: bool,
    body: bytes,
    extra: Headers = (),  # type: ignore[assignment]
    *,
    codec: str = "proto",
    kind: bytes | None = None,
) -> FuzzInput:
    headers = [(b"content-type", kind or content_type(protocol, method, codec))]
    if protocol == "grpc":
        headers.append((b"te", b"trailers"))
    if method.server_streaming:  # a live stream ends at its deadline, not the client's
        deadline = (
            (b"connect-timeout-ms", b"50") if protocol == "connect" else (b"grpc-timeout", b"50m")
        )
        headers.append(deadline)
    headers += [*target.headers_for(method), *extra]
    return FuzzInput(
        http2,
        method.path.encode(),
        headers,
        body,
        protocol=_answer_protocol(headers[0][1]),
        well_formed=all(_valid_field(k, v) for k, v in headers) and _grpc_complete(headers),
    )


def _grpc_complete(headers: Headers) -> bool:
    """A gRPC request must say ``TE: trailers``: without it hypercorn drops the trailers,
    and with them the status (the answer is owed, but cannot be read)."""
    kind = dict(headers).get(b"content-type", b"").lower()
    if not kind.startswith(b"application/grpc") or kind.startswith(b"application/grpc-web"):
        return True
    return (b"te", b"trailers") in headers


def _answer_protocol(kind: bytes) -> str:
    """The protocol the answer comes in: the one the content type names (servers read the
    protocol from it), else Connect unary (which is how any other type is refused)."""
    base = kind.split(b";", 1)[0].strip().lower()
    if base.startswith(b"application/grpc-web"):
        return "grpc-web"
    if base.startswith(b"application/grpc"):
        return "grpc"
    if base.startswith(b"application/connect+"):
        return "connect-stream"
    return "connect"


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_FIELD_VALUE = re.compile(rb"([\x21-\x7e\x80-\xff]([\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")


# Fields that frame the message or the connection: HTTP/2 forbids them (but TE: trailers), and
# over HTTP/1.1 they change the framing, which the server answers itself (501, 400) if at all.
_FRAMING_FIELDS = frozenset(
    {
        b"connection",
        b"content-length",
        b"expect",
        b"host",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
    }
)


def _valid_field(name: bytes, value: bytes) -> bool:
    """RFC 9110's grammar (lower-case names, as HTTP/2 wants), and no framing field: a
    server may refuse anything else at the HTTP level, even drop the connection (h2 does),
    without an RPC answer."""
    if name in _FRAMING_FIELDS and (name, value) != (b"te", b"trailers"):
        return False
    return bool(_TOKEN.fullmatch(name) and _FIELD_VALUE.fullmatch(value))


def _frame(protocol: str, method: Method, message: bytes) -> bytes:
    return message if _wire(protocol, method) == "connect" else envelope(message)


def _message_class(method: Method) -> Any:
    pool = descriptor_pool.Default()
    service, name = method.path.rsplit("/", 2)[-2:]
    try:
        found = pool.FindServiceByName(service).FindMethodByName(name)
    except KeyError:
        return None
    return message_factory.GetMessageClass(found.input_type)


_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    1: st.floats(allow_nan=True, allow_infinity=True),  # double
    2: st.floats(width=32, allow_nan=True, allow_infinity=True),  # float
    3: st.integers(-(2**63), 2**63 - 1),  # int64
    4: st.integers(0, 2**64 - 1),  # uint64
    5: st.integers(-(2**31), 2**31 - 1),  # int32
    6: st.integers(0, 2**64 - 1),  # fixed64
    7: st.integers(0, 2**32 - 1),  # fixed32
    8: st.booleans(),
    9: st.text(max_size=80),  # string: any Unicode (non-ASCII, controls, long)
    12: st.binary(max_size=80),
    13: st.integers(0, 2**32 - 1),  # uint32
    14: st.integers(-(2**31), 2**31 - 1),  # enum: known and unknown values
    15: st.integers(-(2**31), 2**31 - 1),  # sfixed32
    16: st.integers(-(2**63), 2**63 - 1),  # sfixed64
    17: st.integers(-(2**31), 2**31 - 1),  # sint32
    18: st.integers(-(2**63), 2**63 - 1),  # sint64
}


@st.composite
def schema_message(draw: st.DrawFn, cls: Any, depth: int = 2) -> Any:
    """A valid message of ``cls`` with random field values (nested to ``depth``)."""
    message = cls()
    for fd in cls.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        try:
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                key_fd, value_fd = fd.message_type.fields
                if value_fd.message_type is not None:
                    continue
                entries = draw(
                    st.dictionaries(_SCALARS[key_fd.type], _SCALARS[value_fd.type], max_size=4)
                )
                getattr(message, fd.name).update(entries)
            elif fd.message_type is not None:
                if depth == 0:
                    continue
                sub_cls = message_factory.GetMessageClass(fd.message_type)
                count = draw(st.integers(0, 3)) if _repeated(fd) else 1
                for _ in range(count):
                    sub = draw(schema_message(sub_cls, depth - 1))
                    target = getattr(message, fd.name)
                    if _repeated(fd):
                        target.add().CopyFrom(sub)
                    else:
                        target.CopyFrom(sub)
            elif _repeated(fd):
                getattr(message, fd.name).extend(draw(st.lists(_SCALARS[fd.type], max_size=4)))
            else:
                setattr(message, fd.name, draw(_SCALARS[fd.type]))
        except (ValueError, TypeError, KeyError):
            continue  # a value this field refuses (a closed enum, say): leave it unset
    return message


def _repeated(fd: Any) -> bool:
    return bool(fd.is_repeated)


@st.composite
def _message_bytes(draw: st.DrawFn, method: Method) -> bytes:
    cls = _message_class(method)
    if cls is None:
        return draw(st.binary(max_size=64))
    return bytes(draw(schema_message(cls)).SerializeToString())


@st.composite
def _mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with flipped, inserted, deleted or repeated bytes, or truncated."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat"]))
        at = draw(st.integers(0, len(out)))
        if op == "flip" and at < len(out):
            out[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and at < len(out):
            del out[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del out[at:]
        elif op == "repeat":
            out += out[at:]
    return bytes(out)


@st.composite
def random_protobuf(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Random bytes as the message, or a valid message with random field values."""
    method, protocol, http2 = draw(_route(target))
    message = draw(st.one_of(st.binary(max_size=256), _message_bytes(method)))
    return _input(target, method, protocol, http2, _frame(protocol, method, message))


@st.composite
def mutated_protobuf(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """A valid message with its bytes (or its whole frame) mutated."""
    method, protocol, http2 = draw(_route(target))
    framed = _frame(protocol, method, draw(_message_bytes(method)))
    return _input(target, method, protocol, http2, draw(_mutated(framed)))


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text())
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )


@st.composite
def json_bodies(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """JSON messages: random values, schema-shaped objects, deep nesting, bad UTF-8."""
    method, protocol, http2 = draw(_route(target))
    kind = draw(st.sampled_from(["random", "schema", "deep", "bad-utf8", "huge-number"]))
    if kind == "random":
        text = json.dumps(draw(_json_values())).encode()
    elif kind == "schema":
        cls = _message_class(method)
        fields = [f.json_name for f in cls.DESCRIPTOR.fields] if cls is not None else []
        fields = fields or ["x"]
        value = draw(st.dictionaries(st.sampled_from(fields), _json_values(), max_size=6))
        text = json.dumps(value).encode()
    elif kind == "deep":
        depth = draw(st.integers(100, 100_000))
        opener = draw(st.sampled_from([b"[", b'{"a":']))
        text = opener * depth
    elif kind == "bad-utf8":
        text = b'{"' + draw(st.binary(min_size=1, max_size=16)) + b'": "\xff\xfe\xc3("}'
    else:
        text = b'{"x": 1' + b"0" * draw(st.integers(300, 5000)) + b"}"
    return _input(target, method, protocol, http2, _frame(protocol, method, text), codec="json")


@st.composite
def wrong_content_types(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Content types no server here speaks, or that contradict the framing."""
    method, protocol, http2 = draw(_route(target))
    kind = draw(
        st.one_of(
            st.sampled_from(
                [
                    b"",
                    b"text/plain",
                    b"application/xml",
                    b"application/grpc+xml",
                    b"application/grpc-web-text",
                    b"application/connect+msgpack",
                    b"application/proto; charset=utf-16",
                    b"APPLICATION/PROTO",
                    b"application/json; charset=latin-1",
                    b"multipart/form-data; boundary=x",
                ]
            ),
            st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b),
        )
    )
    body = _frame(protocol, method, draw(_message_bytes(method)))
    return _input(target, method, protocol, http2, body, kind=kind)


@st.composite
def declared_lengths(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Envelopes declaring more (up to 4 GiB) or less than they carry; content lengths past
    any limit."""
    method, protocol, http2 = draw(_route(target))
    message = draw(_message_bytes(method))
    if draw(st.booleans()) or _wire(protocol, method) == "connect":
        # Connect unary has no envelope: there the prefix is just five bytes of garbage.
        declared = draw(st.one_of(st.integers(0, 64), st.integers(2**20, 2**32 - 1)))
        body = struct.pack(">BI", 0, declared) + message
        return _input(target, method, protocol, http2, body)
    huge = str(draw(st.integers(target.max_message_bytes * 2, 2**62))).encode()
    inp = _input(target, method, protocol, http2, _frame(protocol, method, message))
    if inp.http2:  # HTTP/2 checks a content-length against the data: a stream error
        return inp
    # A length it does not send: a server may wait for the rest (a slow client), so this
    # request is owed an answer only by routes that check the length first.
    return FuzzInput(
        False,
        inp.path,
        [*inp.headers, (b"content-length", huge)],
        inp.body,
        protocol=inp.protocol,
        well_formed=False,
    )


@st.composite
def compressed_flags(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Envelope flags (compressed, end-of-stream, trailer, unknown bits), with or without a
    declared encoding, over garbage, valid gzip, or a gzip bomb."""
    method, protocol, http2 = draw(_route(target))
    message = draw(_message_bytes(method))
    payload_kind = draw(st.sampled_from(["plain", "gzip", "garbage", "bomb"]))
    if payload_kind == "gzip":
        payload = gzip.compress(message)
    elif payload_kind == "garbage":
        payload = draw(st.binary(max_size=64))
    elif payload_kind == "bomb":
        payload = _bomb()
    else:
        payload = message
    encoding = draw(st.sampled_from([b"", b"gzip", b"identity", b"br", b"zstd"]))
    extra: Headers = []
    if encoding:
        name = {
            "connect": b"content-encoding",
            "connect-stream": b"connect-content-encoding",
        }.get(_wire(protocol, method), b"grpc-encoding")
        extra.append((name, encoding))
    if _wire(protocol, method) == "connect":
        return _input(target, method, protocol, http2, payload, extra)
    flags = draw(st.sampled_from([0x01, 0x02, 0x80, 0x03, 0x7E, 0xFF, 0x00]))
    return _input(target, method, protocol, http2, envelope(payload, flags), extra)


@functools.cache
def _bomb() -> bytes:
    """64 MiB of zeros, gzipped to about 64 KiB."""
    return gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)


@st.composite
def message_counts(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Zero or several messages where one is expected (unary and server-stream calls)."""
    unary = [m for m in target.methods if not m.client_streaming] or list(target.methods)
    method = draw(st.sampled_from(unary))
    protocol = draw(st.sampled_from([p for p in _protocols(target) if p != "connect"]))
    http2 = protocol == "grpc" or (target.surface.h2 and draw(st.booleans()))
    count = draw(st.sampled_from([0, 2, 3, 17]))
    body = b"".join(envelope(draw(_message_bytes(method))) for _ in range(count))
    return _input(target, method, protocol, http2, body)


@st.composite
def oversized_bodies(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Bodies, or one message, just past the surface's message limit (or far past it)."""
    method, protocol, http2 = draw(_route(target))
    size = target.max_message_bytes + draw(st.sampled_from([1, 6, 4096, 65536]))
    message = b"\x0a" + b"\xff" * 4 + b"\x0f" + b"x" * (size - 6)  # one huge field 1
    return _input(target, method, protocol, http2, _frame(protocol, method, message))


_HEADER_NAME = st.binary(min_size=1, max_size=24).map(
    lambda b: bytes(c for c in b.lower() if 0x21 <= c < 0x7F and c != ord(":")) or b"x"
)


@st.composite
def header_floods(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Many headers, huge values, odd names and bytes, contradictory protocol headers."""
    method, protocol, http2 = draw(_route(target))
    kind = draw(st.sampled_from(["many", "huge", "odd", "protocol", "duplicate"]))
    extra: Headers
    if kind == "many":
        count = draw(st.integers(50, 3000))
        extra = [(b"x-flood-%d" % i, b"v" * 16) for i in range(count)]
    elif kind == "huge":
        size = draw(st.sampled_from([8193, 16385, 65536, 1 << 20]))
        extra = [(draw(_HEADER_NAME), b"v" * size)]
    elif kind == "odd":
        value = draw(st.binary(max_size=64).filter(lambda b: b"\r" not in b and b"\n" not in b))
        extra = [(draw(_HEADER_NAME), value.replace(b"\0", b""))]
    elif kind == "protocol":
        extra = [
            draw(
                st.sampled_from(
                    [
                        (b"connect-timeout-ms", b"-1"),
                        (b"connect-timeout-ms", b"99999999999"),
                        (b"connect-timeout-ms", b"1e3"),
                        (b"grpc-timeout", b"99999999999H"),
                        (b"grpc-timeout", b"1x"),
                        (b"grpc-timeout", b""),
                        (b"connect-protocol-version", b"2"),
                        (b"connect-accept-encoding", b"\xff"),
                        (b"grpc-accept-encoding", b"gzip;q=abc"),
                        (b"te", b"chunked"),
                    ]
                )
            )
        ]
    else:
        extra = [(b"content-type", draw(st.sampled_from([b"application/json", b"text/x"])))]
    body = _frame(protocol, method, draw(_message_bytes(method)))
    if http2 and protocol != "grpc" and sum(len(k) + len(v) for k, v in extra) > 16 * 1024:
        http2 = False  # h2's encoder is quadratic in a header's size: big floods go as HTTP/1.1
    elif http2 and protocol == "grpc":
        extra = extra[:200]
        extra = [(k, v[: 16 * 1024]) for k, v in extra]
    return _input(target, method, protocol, http2, body, extra)


FramingFactory = Callable[[FuzzTarget], st.SearchStrategy[FuzzInput]]

FRAMINGS: dict[str, FramingFactory] = {
    "random protobuf": random_protobuf,
    "mutated protobuf": mutated_protobuf,
    "json": json_bodies,
    "wrong content types": wrong_content_types,
    "declared lengths": declared_lengths,
    "compressed flags": compressed_flags,
    "message counts": message_counts,
    "oversized bodies": oversized_bodies,
    "header floods": header_floods,
}


# --- sending and counting ------------------------------------------------------------------


@dataclass
class Figures:
    """What a surface answered."""

    inputs: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    valid_calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "answers_by_code": dict(sorted(self.codes.items())),
            "crashes": len(self.crashes),
            "leaks": len(self.leaks),
            "valid_calls_after_batches": self.valid_calls,
        }


class SurfaceDown(Exception):
    """The surface refuses connections: its server is gone."""


class Fuzzer:
    """Sends `FuzzInput`s to a target and keeps its `Figures`; raises `SurfaceDown` when the
    server stops accepting connections (a crash the caller reports)."""

    def __init__(self, target: FuzzTarget, portal: Portal, check_every: int = 200) -> None:
        self.target = target
        self.portal = portal
        self.check_every = check_every
        self.figures = Figures()
        self._endpoint = Endpoint.from_url(target.surface.url)

    def send(self, inp: FuzzInput) -> str:
        """Send one input; its outcome code (crashes and leaks are recorded)."""
        outcome = self.portal.run(self._exchange(inp), WITHIN * 2)
        if outcome in ("connection-ConnectionRefusedError", "connection-FileNotFoundError"):
            raise SurfaceDown(f"{self.target.surface.name} refuses connections")
        self.figures.inputs += 1
        self.figures.codes[outcome] += 1
        if self.figures.inputs % self.check_every == 0:
            self.check_valid_call()
        return outcome

    async def _exchange(self, inp: FuzzInput) -> str:
        try:
            reply = await self._request(inp)
        except NoAnswer as exc:
            reset = "reset" in str(exc)
            if inp.well_formed and not reset and not _refused_at_http_level(inp):
                self.figures.crashes.append(f"{_describe(inp)}: no answer ({exc})")
            return "reset" if reset else "no-answer"
        except (ConnectionError, OSError) as exc:
            return f"connection-{type(exc).__name__}"
        code = answer_code(reply, inp.protocol)
        found = leaks(reply)
        if found:
            self.figures.leaks.append(f"{_describe(inp)}: {found} {reply.body[:200]!r}")
        crashed = (
            code in ("unknown", "data_loss")
            or (code == "internal" and answer_message(reply, inp.protocol) == INTERNAL_MESSAGE)
            # What the HTTP layer answers a request outside HTTP's grammar is its business.
            or (inp.well_formed and (code == "malformed" or code.startswith("http-5")))
        )
        if crashed:
            self.figures.crashes.append(f"{_describe(inp)}: {code} {reply.status} {_text(reply)}")
        return code

    async def _request(self, inp: FuzzInput) -> Reply:
        if inp.http2:
            request = H2Request(inp.path, inp.headers, [inp.body], method=inp.method)
            return await h2_exchange(self._endpoint, request, within=WITHIN)
        raw = h1_request(
            inp.method.decode(),
            inp.path,
            [*inp.headers, (b"connection", b"close")],
            inp.body,
            content_length=not any(k == b"content-length" for k, _ in inp.headers),
        )
        return await h1_exchange(self._endpoint, raw, within=WITHIN)

    def check_valid_call(self) -> None:
        """The surface's valid call succeeds (else AssertionError)."""
        valid = self.target.surface.valid
        method = Method(valid.path, False, False)
        inp = _input(self.target, method, "connect", False, valid.request)
        try:
            reply = self.portal.run(self._request(inp), WITHIN * 2)
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise SurfaceDown(f"{self.target.surface.name} refuses connections") from exc
        assert answer_code(reply, "connect") == "ok", (valid.path, reply)
        self.figures.valid_calls += 1


def _refused_at_http_level(inp: FuzzInput) -> bool:
    """Requests a server may drop without an answer: headers past HTTP servers' limits."""
    total = sum(len(k) + len(v) for k, v in inp.headers)
    return total > 16 * 1024 or len(inp.headers) > 100


def _describe(inp: FuzzInput) -> str:
    kind = dict(inp.headers).get(b"content-type", b"")
    http = "h2" if inp.http2 else "h1"
    return f"{http} {inp.path.decode()} {kind[:40]!r} body={len(inp.body)}B"


def _text(reply: Reply) -> str:
    message = reply.header(b"grpc-message") or reply.body[:160]
    return repr(message[:160])
