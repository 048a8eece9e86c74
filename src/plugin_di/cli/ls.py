"""List the plugins a host knows: their services, versions and health.

The host admits the caller as it admits a plugin's handshake (docs/security.md#admission),
but the caller joins nothing: give a join token the operator issued (--token, else
PLUGIN_DI_JOIN_TOKEN; it names the self id), or --self-id for a self id the host allows
(an --allow or --allow-cert entry, with --tls-cert/--tls-key for a client certificate;
any self id on a host with --open-registration).

exit codes: 0 listed, 1 invalid arguments, 2 the connection failed,
3 the host refused or failed (its Connect code is printed)

examples:
  plugin-di join-token --key-file admission.key --self-id ops --ttl 300 > ops.token
  plugin-di ls http://127.0.0.1:7000 --token "$(cat ops.token)"
  plugin-di ls https://host:8443 --self-id ops --tls-ca ca.pem --tls-cert ops.pem --tls-key ops.key
  plugin-di ls http://127.0.0.1:7000 --json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Any

from plugin_di.cli._client import (
    CONNECTION_FAILURE,
    INVALID_ARGUMENTS,
    OK,
    RPC_FAILURE,
    ClientOptions,
    UsageError,
    add_client_arguments,
    error_of_response,
    is_connection_failure,
)

DEFAULT_SELF_ID = "plugin-di-ls"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="HOST_URL", help="the host's URL (or HOST:PORT)")
    parser.add_argument(
        "--token", metavar="TOKEN", help="a join token (default: PLUGIN_DI_JOIN_TOKEN)"
    )
    parser.add_argument(
        "--self-id",
        metavar="ID",
        help=f"the self id to be admitted as (default: the token's, else {DEFAULT_SELF_ID})",
    )
    parser.add_argument("--json", action="store_true", help="print the host's JSON answer")
    add_client_arguments(parser, timeout=5.0)


def token_self_id(token: str) -> str | None:
    """The self id a join token names (read, not verified: the host verifies it)."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "pdj1":
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else None


def _headers(args: argparse.Namespace) -> list[tuple[str, str]]:
    from plugin_di.host.inspect import SELF_ID_HEADER

    token = args.token or os.environ.get("PLUGIN_DI_JOIN_TOKEN", "")
    self_id = args.self_id or (token_self_id(token) if token else None) or DEFAULT_SELF_ID
    headers = [(SELF_ID_HEADER, self_id)]
    if token:
        headers.append(("authorization", f"Bearer {token}"))
    return headers


def render(listing: dict[str, Any]) -> str:
    """The host's answer as a table: one row per plugin, its services in the last column."""
    rows = [("PLUGIN", "VERSION", "HEALTH", "RUNTIME ID", "SERVICES")]
    for plugin in listing.get("plugins", []):
        services = ", ".join(f"{s['type']}@{s['version']}" for s in plugin["services"]) or "-"
        health = plugin["health"]
        if plugin.get("reason"):
            health += f" ({plugin['reason']})"
        rows.append(
            (plugin["selfId"], plugin["version"] or "-", health, plugin["runtimeId"], services)
        )
    if len(rows) == 1:
        return "no plugins\n"
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4]
             for row in rows]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines) + "\n"


def list_plugins(options: ClientOptions, headers: list[tuple[str, str]]) -> dict[str, Any]:
    """GET the host's listing; ConnectionError or RuntimeError('code: message') on failure."""
    from plugin_di.host.inspect import PLUGINS_PATH

    with options.http_client() as http:
        try:
            response = http.client.get(http.address + PLUGINS_PATH, headers,
                                       timeout=options.timeout)  # fmt: skip
        except Exception as exc:
            if is_connection_failure(exc):
                raise ConnectionError(str(exc)) from None
            raise
    if response.status != 200:
        code, message = error_of_response(response.status, response.content)
        if response.status == 404 and code == "unimplemented":  # no Connect error: not ours
            message += " (the host has no plugin listing: ls needs a plugin-di host)"
        raise RuntimeError(f"{code}: {message}")
    listing: dict[str, Any] = json.loads(response.content)
    return listing


def run(args: argparse.Namespace) -> int:
    try:
        options = ClientOptions.from_args(args.url, args)
        listing = list_plugins(options, _headers(args))
    except UsageError as exc:
        print(f"plugin-di ls: {exc}", file=sys.stderr)
        return INVALID_ARGUMENTS
    except ConnectionError as exc:
        print(f"failed to connect to {args.url}: {exc}", file=sys.stderr)
        return CONNECTION_FAILURE
    except (RuntimeError, OSError, ValueError) as exc:  # TimeoutError: no answer in time
        print(f"plugin-di ls: {exc}", file=sys.stderr)
        return RPC_FAILURE
    sys.stdout.write(json.dumps(listing, indent=2) + "\n" if args.json else render(listing))
    return OK
