"""Raw HTTP/1.1 and HTTP/2 requests with a path sent exactly as written (no client of ours
or pyqwest would send ``..`` or ``%2e`` unresolved), and the Connect, gRPC or gRPC-Web code
of the answer."""

from __future__ import annotations

import asyncio
import json
import struct
import urllib.parse
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events

from plugin_di.rpc.asgi import GRPC_STATUS

TIMEOUT = 5.0
CODE_NAMES = {number: code.value for code, number in GRPC_STATUS.items()} | {0: "ok"}

CONTENT_TYPES = {
    "connect": "application/json",
    "grpc": "application/grpc",
    "grpc-web": "application/grpc-web+proto",
}


def request_body(protocol: str, message: bytes = b"", json_text: str = "{}") -> bytes:
    """A request message in ``protocol``'s framing: JSON for Connect, else the binary one
    (empty by default: what Shutdown and GetPluginInfo would accept)."""
    if protocol == "connect":
        return json_text.encode()
    return struct.pack(">BI", 0, len(message)) + message


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    trailers: dict[str, str] = field(default_factory=dict)

    def message(self, protocol: str) -> str:
        """The error message (percent-decoded for gRPC)."""
        if protocol == "connect":
            return str(json.loads(self.body).get("message", ""))
        raw = self.trailers.get("grpc-message") or self.headers.get("grpc-message")
        if raw is None and protocol == "grpc-web":
            raw = _grpc_web_trailers(self.body).get("grpc-message")
        return urllib.parse.unquote(raw or "")

    def code(self, protocol: str) -> str:
        """The answer's code in ``protocol``: ``ok``, ``invalid_argument``..."""
        if protocol == "connect":
            if self.status == 200:
                return "ok"
            return str(json.loads(self.body)["code"])
        status = self.trailers.get("grpc-status") or self.headers.get("grpc-status")
        if status is None and protocol == "grpc-web":
            status = _grpc_web_trailers(self.body).get("grpc-status")
        assert status is not None, f"no grpc-status in {self}"
        return CODE_NAMES[int(status)]


def _grpc_web_trailers(body: bytes) -> dict[str, str]:
    pos = 0
    while pos + 5 <= len(body):
        flags, size = struct.unpack(">BI", body[pos : pos + 5])
        frame = body[pos + 5 : pos + 5 + size]
        pos += 5 + size
        if flags & 0x80:
            lines = frame.decode("latin-1").split("\r\n")
            return {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    return {}


async def h1_request(
    address: str, path: str, headers: dict[str, str], body: bytes, method: str = "POST"
) -> Answer:
    """One HTTP/1.1 request on a new connection (closed after the answer)."""
    host, _, port = address.rpartition(":")
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            head = f"{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
            raw = await reader.read()
        finally:
            writer.close()
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    parsed = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if "chunked" in parsed.get("transfer-encoding", ""):
        rest = _dechunk(rest)
    return Answer(status, parsed, rest)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


async def h2_request(address: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
    """One HTTP/2 (prior knowledge) POST on a new connection."""
    host, _, port = address.rpartition(":")
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="latin-1")
    )
    answer = Answer(0, {}, b"")
    body_parts: list[bytes] = []
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            conn.initiate_connection()
            stream = conn.get_next_available_stream_id()
            pseudo = [(":method", "POST"), (":scheme", "http"), (":authority", address)]
            conn.send_headers(stream, [*pseudo, (":path", path), *headers.items()])
            conn.send_data(stream, body, end_stream=True)
            writer.write(conn.data_to_send())
            ended = False
            while not ended:
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        pairs = dict(event.headers)
                        answer.status = int(pairs.pop(":status"))
                        answer.headers = pairs
                    elif isinstance(event, h2.events.DataReceived):
                        body_parts.append(event.data)
                        conn.acknowledge_received_data(event.flow_controlled_length, stream)
                    elif isinstance(event, h2.events.TrailersReceived):
                        answer.trailers = dict(event.headers)
                    elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                        ended = True
                writer.write(conn.data_to_send())
        finally:
            writer.close()
    answer.body = b"".join(body_parts)
    return answer
