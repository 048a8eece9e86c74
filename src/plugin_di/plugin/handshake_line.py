"""The one line a plugin prints on stdout when it is ready (go-plugin's format).

``CORE|APP|NETWORK|ADDR|PROTOCOL|CERT``, e.g. ``1|1|tcp|127.0.0.1:41234|connect|``.
NETWORK is ``tcp`` or ``unix``; CERT is the server certificate as base64 DER
(standard alphabet, no padding, as go-plugin writes it), or empty.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

PROTOCOL_CONNECT = "connect"


class HandshakeLineError(ValueError):
    """The plugin printed something that is not a handshake line."""


@dataclass(frozen=True)
class HandshakeLine:
    """A parsed handshake line."""

    core_version: int
    app_version: int
    network: str
    address: str
    protocol: str = PROTOCOL_CONNECT
    cert_der: bytes = b""

    def format(self) -> str:
        """The line as printed, without the trailing newline."""
        cert = base64.b64encode(self.cert_der).decode().rstrip("=") if self.cert_der else ""
        fields = (self.core_version, self.app_version, self.network, self.address, self.protocol)
        return "|".join(str(f) for f in fields) + "|" + cert

    @property
    def url(self) -> str:
        """Base URL to reach the plugin (``unix://`` + path for Unix sockets)."""
        if self.network == "unix":
            return f"unix://{self.address}"
        scheme = "https" if self.cert_der else "http"
        return f"{scheme}://{self.address}"

    @classmethod
    def parse(cls, line: str) -> HandshakeLine:
        """Parse a line; raise HandshakeLineError naming what is wrong."""
        parts = line.strip().split("|")
        if len(parts) < 4:
            raise HandshakeLineError(
                f"unrecognized plugin message {line.strip()!r}: expected "
                "CORE|APP|NETWORK|ADDR|PROTOCOL|CERT"
            )
        try:
            core, app = int(parts[0]), int(parts[1])
        except ValueError:
            raise HandshakeLineError(
                f"unrecognized plugin message {line.strip()!r}: versions must be integers"
            ) from None
        network, address = parts[2], parts[3]
        if network not in ("tcp", "unix"):
            raise HandshakeLineError(f"unsupported network {network!r} in handshake line")
        protocol = parts[4] if len(parts) > 4 and parts[4] else PROTOCOL_CONNECT
        cert = b""
        if len(parts) > 5 and parts[5]:
            raw = parts[5]
            cert = base64.b64decode(raw + "=" * (-len(raw) % 4))
        return cls(core, app, network, address, protocol, cert)
