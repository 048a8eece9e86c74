"""What a fuzz input is, and the pieces the framings build inputs from.

`FuzzTarget` names what is attacked: a `Surface` (URL, server kind, HTTP/2 or not, a valid
call), its methods, and the headers each method's inputs carry (credentials, so inputs
reach the code behind authentication). `make_input` turns a method, protocol and body into
a `FuzzInput`, judging whether it is well-formed HTTP (a server owes it an answer) and in
which protocol its answer comes; `schema_message` draws valid messages of any type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from hypothesis import strategies as st

from .calls import content_type, envelope
from .servers import Method, Surface

Headers = list[tuple[bytes, bytes]]


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


# --- building inputs ---------------------------------------------------------------------


def protocols(target: FuzzTarget) -> list[str]:
    return ["connect", "grpc-web", "grpc"] if target.surface.h2 else ["connect", "grpc-web"]


def wire(protocol: str, method: Method) -> str:
    return "connect-stream" if protocol == "connect" and not method.unary else protocol


@st.composite
def route(draw: st.DrawFn, target: FuzzTarget) -> tuple[Method, str, bool]:
    method = draw(st.sampled_from(list(target.methods)))
    protocol = draw(st.sampled_from(protocols(target)))
    http2 = protocol == "grpc" or (target.surface.h2 and draw(st.booleans()))
    return method, protocol, http2


def make_input(
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


def frame(protocol: str, method: Method, message: bytes) -> bytes:
    return message if wire(protocol, method) == "connect" else envelope(message)


def message_class(method: Method) -> Any:
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
def message_bytes(draw: st.DrawFn, method: Method) -> bytes:
    cls = message_class(method)
    if cls is None:
        return draw(st.binary(max_size=64))
    return bytes(draw(schema_message(cls)).SerializeToString())


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
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
