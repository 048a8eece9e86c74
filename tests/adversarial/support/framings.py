"""The fuzz framings: one hypothesis strategy of `FuzzInput`s each, by name in `FRAMINGS`."""

from __future__ import annotations

import functools
import gzip
import json
import struct
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from .calls import envelope
from .inputs import (
    FuzzInput,
    FuzzTarget,
    Headers,
    frame,
    make_input,
    message_bytes,
    message_class,
    mutated,
    protocols,
    route,
    wire,
)


@st.composite
def random_protobuf(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Random bytes as the message, or a valid message with random field values."""
    method, protocol, http2 = draw(route(target))
    message = draw(st.one_of(st.binary(max_size=256), message_bytes(method)))
    return make_input(target, method, protocol, http2, frame(protocol, method, message))


@st.composite
def mutated_protobuf(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """A valid message with its bytes (or its whole frame) mutated."""
    method, protocol, http2 = draw(route(target))
    framed = frame(protocol, method, draw(message_bytes(method)))
    return make_input(target, method, protocol, http2, draw(mutated(framed)))


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
    method, protocol, http2 = draw(route(target))
    kind = draw(st.sampled_from(["random", "schema", "deep", "bad-utf8", "huge-number"]))
    if kind == "random":
        text = json.dumps(draw(_json_values())).encode()
    elif kind == "schema":
        cls = message_class(method)
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
    return make_input(target, method, protocol, http2, frame(protocol, method, text), codec="json")


@st.composite
def wrong_content_types(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Content types no server here speaks, or that contradict the framing."""
    method, protocol, http2 = draw(route(target))
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
    body = frame(protocol, method, draw(message_bytes(method)))
    return make_input(target, method, protocol, http2, body, kind=kind)


@st.composite
def declared_lengths(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Envelopes declaring more (up to 4 GiB) or less than they carry; content lengths past
    any limit."""
    method, protocol, http2 = draw(route(target))
    message = draw(message_bytes(method))
    if draw(st.booleans()) or wire(protocol, method) == "connect":
        # Connect unary has no envelope: there the prefix is just five bytes of garbage.
        declared = draw(st.one_of(st.integers(0, 64), st.integers(2**20, 2**32 - 1)))
        body = struct.pack(">BI", 0, declared) + message
        return make_input(target, method, protocol, http2, body)
    huge = str(draw(st.integers(target.max_message_bytes * 2, 2**62))).encode()
    inp = make_input(target, method, protocol, http2, frame(protocol, method, message))
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
    method, protocol, http2 = draw(route(target))
    message = draw(message_bytes(method))
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
        }.get(wire(protocol, method), b"grpc-encoding")
        extra.append((name, encoding))
    if wire(protocol, method) == "connect":
        return make_input(target, method, protocol, http2, payload, extra)
    flags = draw(st.sampled_from([0x01, 0x02, 0x80, 0x03, 0x7E, 0xFF, 0x00]))
    return make_input(target, method, protocol, http2, envelope(payload, flags), extra)


@functools.cache
def _bomb() -> bytes:
    """64 MiB of zeros, gzipped to about 64 KiB."""
    return gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)


@st.composite
def message_counts(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Zero or several messages where one is expected (unary and server-stream calls)."""
    unary = [m for m in target.methods if not m.client_streaming] or list(target.methods)
    method = draw(st.sampled_from(unary))
    protocol = draw(st.sampled_from([p for p in protocols(target) if p != "connect"]))
    http2 = protocol == "grpc" or (target.surface.h2 and draw(st.booleans()))
    count = draw(st.sampled_from([0, 2, 3, 17]))
    body = b"".join(envelope(draw(message_bytes(method))) for _ in range(count))
    return make_input(target, method, protocol, http2, body)


@st.composite
def oversized_bodies(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Bodies, or one message, just past the surface's message limit (or far past it)."""
    method, protocol, http2 = draw(route(target))
    size = target.max_message_bytes + draw(st.sampled_from([1, 6, 4096, 65536]))
    message = b"\x0a" + b"\xff" * 4 + b"\x0f" + b"x" * (size - 6)  # one huge field 1
    return make_input(target, method, protocol, http2, frame(protocol, method, message))


_HEADER_NAME = st.binary(min_size=1, max_size=24).map(
    lambda b: bytes(c for c in b.lower() if 0x21 <= c < 0x7F and c != ord(":")) or b"x"
)


@st.composite
def header_floods(draw: st.DrawFn, target: FuzzTarget) -> FuzzInput:
    """Many headers, huge values, odd names and bytes, contradictory protocol headers."""
    method, protocol, http2 = draw(route(target))
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
    body = frame(protocol, method, draw(message_bytes(method)))
    if http2 and protocol != "grpc" and sum(len(k) + len(v) for k, v in extra) > 16 * 1024:
        http2 = False  # h2's encoder is quadratic in a header's size: big floods go as HTTP/1.1
    elif http2 and protocol == "grpc":
        extra = extra[:200]
        extra = [(k, v[: 16 * 1024]) for k, v in extra]
    return make_input(target, method, protocol, http2, body, extra)


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
