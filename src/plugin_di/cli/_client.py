"""What ``health``, ``ls`` and ``call`` share: a target URL, TLS options, a blocking client,
and telling a connection failure from a failed RPC."""

from __future__ import annotations

import argparse
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectrpc.code import Code

if TYPE_CHECKING:
    from plugin_di.rpc.transport import PluginSyncHTTPClient

# Connect protocol: the code of an error whose body is not a Connect error, by HTTP status.
_HTTP_CODES = {
    400: "internal",
    401: "unauthenticated",
    403: "permission_denied",
    404: "unimplemented",
    408: "deadline_exceeded",
    413: "resource_exhausted",
    429: "unavailable",
    431: "resource_exhausted",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}


SCHEMES = ("http://", "https://", "http+h2c://", "http+h1fast://", "unix:")


# The exit codes of every probing command, grpc-health-probe's (health adds 4: not serving).
OK = 0
INVALID_ARGUMENTS = 1
CONNECTION_FAILURE = 2
RPC_FAILURE = 3


class UsageError(ValueError):
    """Bad arguments (a URL without a scheme and no --tls, unreadable PEM files...)."""


def add_client_arguments(parser: argparse.ArgumentParser, *, timeout: float) -> None:
    """The options of every command that calls a server: timeouts and TLS."""
    parser.add_argument(
        "--timeout",
        "--rpc-timeout",
        type=float,
        default=timeout,
        metavar="SECONDS",
        help=f"deadline of each call (default {timeout:g})",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=timeout,
        metavar="SECONDS",
        help=f"deadline of the connection (default {timeout:g})",
    )
    tls = parser.add_argument_group("TLS (an https:// URL, or HOST:PORT with --tls)")
    tls.add_argument("--tls", action="store_true", help="use TLS for a HOST:PORT address")
    tls.add_argument(
        "--tls-ca", "--ca", metavar="PEM", help="CA certificates to trust instead of the system's"
    )
    tls.add_argument("--tls-cert", metavar="PEM", help="client certificate, for mTLS")
    tls.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")


def target_url(address: str, *, tls: bool) -> str:
    """``address`` as a base URL: a URL as given (no trailing slash), HOST:PORT as http(s)://."""
    address = address.strip()
    if address.startswith(SCHEMES):
        if tls and not address.startswith("https://"):
            raise UsageError(f"TLS options need an https:// URL or HOST:PORT, got {address!r}")
        if address.startswith("unix:"):  # the transport checks the path
            return address
        url, bare = address.rstrip("/"), False
    elif "://" in address:
        scheme = address.split("://", 1)[0]
        raise UsageError(f"unsupported URL scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    else:
        url, bare = ("https://" if tls else "http://") + address, True
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise UsageError(f"expected a URL or HOST:PORT, got {address!r}") from None
    if not parts.hostname or (bare and port is None):
        raise UsageError(f"expected a URL or HOST:PORT, got {address!r}")
    return url


@dataclass(frozen=True)
class ClientOptions:
    """The parsed client options of a command."""

    url: str
    timeout: float
    connect_timeout: float
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @classmethod
    def from_args(cls, address: str, args: argparse.Namespace) -> ClientOptions:
        if (args.tls_cert is None) != (args.tls_key is None):
            raise UsageError("--tls-cert and --tls-key go together")
        if args.timeout <= 0 or args.connect_timeout <= 0:
            raise UsageError("timeouts must be more than 0 seconds")
        tls = args.tls or bool(args.tls_ca or args.tls_cert)
        return cls(
            url=target_url(address, tls=tls),
            timeout=args.timeout,
            connect_timeout=args.connect_timeout,
            tls_ca=args.tls_ca,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )

    @property
    def timeout_ms(self) -> int:
        return max(1, round(self.timeout * 1000))

    def http_client(self) -> PluginSyncHTTPClient:
        """A blocking client for ``url``; UsageError when a PEM file cannot be read."""
        from plugin_di.rpc.transport import sync_http_client

        tls = None
        if self.url.startswith("https://"):
            from plugin_di.rpc.tls import load_client_tls

            try:
                tls = load_client_tls(self.tls_ca, self.tls_cert, self.tls_key)
            except (OSError, ValueError) as exc:
                raise UsageError(str(exc)) from None
        try:
            return sync_http_client(
                self.url, tls=tls, connect_timeout=self.connect_timeout, read_timeout=self.timeout
            )
        except ValueError as exc:  # a URL the transports refuse (a relative unix: path...)
            raise UsageError(str(exc)) from None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_connection_failure(exc: BaseException) -> bool:
    """Whether the call failed before a connection was made (refused, unreachable, timed out
    while connecting, TLS refused): the transports raise ConnectionError (or ssl.SSLError),
    which Connect clients keep as the cause. A timeout after connecting is a failed RPC."""
    return any(isinstance(e, ConnectionError | ssl.SSLError) for e in _chain(exc))


def code_name(code: Code) -> str:
    """A Connect code as Connect spells it on the wire (``not_found``)."""
    return str(code.value)


def error_of_response(status: int, content: bytes) -> tuple[str, str]:
    """The Connect code and message of an HTTP error response (Connect JSON, else by status)."""
    try:
        payload: Any = json.loads(content)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("code"), str):
        return payload["code"], str(payload.get("message", ""))
    text = content.decode("utf-8", "replace").strip()[:200]
    return _HTTP_CODES.get(status, "unknown"), f"HTTP {status}" + (f": {text}" if text else "")
