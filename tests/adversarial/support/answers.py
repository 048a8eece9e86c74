"""Reading an answer: its RPC code and message in each protocol, and exception text in it.

``answer_code`` gives a Connect code name (``ok``, ``invalid_argument``, ...), or
``http-<status>`` for an answer outside the protocol (415, 405, ...), or ``malformed``;
``leaks`` lists what looks like Python exception text (tracebacks, exception class names,
codec messages) anywhere in an answer.
"""

from __future__ import annotations

import builtins
import json
import re
import struct
import urllib.parse

from .wire import Reply

GRPC_CODES = (
    "ok",
    "canceled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
)


def envelopes(data: bytes) -> list[tuple[int, bytes]]:
    """The (flags, payload) frames of an enveloped body; a truncated tail is dropped."""
    frames = []
    while len(data) >= 5:
        flags, size = struct.unpack(">BI", data[:5])
        if len(data) < 5 + size:
            break
        frames.append((flags, data[5 : 5 + size]))
        data = data[5 + size :]
    return frames


def answer_code(reply: Reply, protocol: str) -> str:
    """The RPC outcome: a Connect code name (``ok``, ``invalid_argument``, ...), or
    ``http-<status>`` for an answer outside the protocol (415, 405, ...), or ``malformed``."""
    content_type = (reply.header(b"content-type") or b"").lower()
    if protocol == "grpc":
        status = reply.header(b"grpc-status")
        if status is not None and status.isdigit() and int(status) < len(GRPC_CODES):
            return GRPC_CODES[int(status)]
        return f"http-{reply.status}" if reply.status != 200 else "malformed"
    if reply.status != 200 and not content_type.startswith(b"application/json"):
        return f"http-{reply.status}"
    if protocol == "grpc-web":
        status = reply.header(b"grpc-status")
        for flags, payload in envelopes(reply.body):
            if flags & 0x80:
                for line in payload.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"grpc-status":
                        status = value.strip()
        if status is not None and status.isdigit() and int(status) < len(GRPC_CODES):
            return GRPC_CODES[int(status)]
        return f"http-{reply.status}" if reply.status != 200 else "malformed"
    if protocol == "connect-stream" and reply.status == 200:
        for flags, payload in envelopes(reply.body):
            if flags & 0x02:
                try:
                    end = json.loads(payload or b"{}")
                except ValueError:
                    return "malformed"
                error = end.get("error") if isinstance(end, dict) else None
                return str(error.get("code", "malformed")) if isinstance(error, dict) else "ok"
        return "malformed"
    if reply.status == 200:
        return "ok"
    try:
        code = json.loads(reply.body).get("code")
    except (ValueError, AttributeError):
        return f"http-{reply.status}"
    return str(code) if code else f"http-{reply.status}"


def answer_message(reply: Reply, protocol: str) -> str:
    """The error message of an answer, in any protocol ('' when there is none)."""
    if protocol in ("grpc", "grpc-web"):
        message = reply.header(b"grpc-message")
        for flags, payload in envelopes(reply.body) if protocol == "grpc-web" else []:
            if flags & 0x80:
                for line in payload.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"grpc-message":
                        message = value.strip()
        return urllib.parse.unquote((message or b"").decode("latin-1"))
    data: object = None
    try:
        if protocol == "connect-stream":
            ends = [p for f, p in envelopes(reply.body) if f & 0x02]
            data = (json.loads(ends[-1] or b"{}") if ends else {}).get("error", {})
        else:
            data = json.loads(reply.body)
    except (ValueError, AttributeError):
        return ""
    return str(data.get("message", "")) if isinstance(data, dict) else ""


_EXCEPTION_NAMES = sorted(
    {
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException) and len(name) > 6
    }
    | {"DecodeError", "ParseError", "JSONDecodeError", "EncodeError", "ConnectError"}
)
_LEAK = re.compile(
    "|".join(
        [
            r"Traceback \(most recent call last\)",
            r'File "[^"]+", line \d+',
            r"codec can't (de|en)code",
            r"\b(" + "|".join(map(re.escape, _EXCEPTION_NAMES)) + r")\b",
        ]
    )
)


def leaks(reply: Reply) -> list[str]:
    """Exception text in an answer (body, header and trailer values, percent-decoded)."""
    texts = [reply.body.decode("latin-1")]
    for _, value in [*reply.headers, *reply.trailers]:
        texts.append(urllib.parse.unquote(value.decode("latin-1")))
    for _, payload in envelopes(reply.body):
        texts.append(urllib.parse.unquote(payload.decode("latin-1")))
    found = sorted({m.group(0) for text in texts for m in _LEAK.finditer(text)})
    return found
