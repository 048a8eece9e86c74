"""Make one unary call with a JSON body and print the JSON answer (the Connect protocol).

METHOD is Service/Method as the .proto names it (package.Service/Method). JSON is the
request message in protobuf's JSON mapping (camelCase or proto field names); '-' reads it
from stdin, '@FILE' from FILE; without it the message is empty ({}). The answer goes to
stdout as indented JSON. A server's error goes to stderr with its Connect code
('not_found: no key "a"') and the exit code is nonzero:

  0  the call succeeded
  1  invalid arguments (a bad METHOD or JSON, unreadable files)
  2  the connection failed or timed out
  3  the server answered with an error

Any Connect server works: a plugin, a host, or a plugin through a host's router
(URL http://HOST/services/TYPE/PROVIDER_ID with its runtime token headers).

examples:
  plugin-di call http://127.0.0.1:8080 kv.v1.KVService/Put '{"key": "a", "value": "YQ=="}'
  plugin-di call http://127.0.0.1:8080 kv.v1.KVService/Get '{"key": "a"}'
  echo '{}' | plugin-di call unix:///run/kv.sock kv.v1.KVService/List -
  plugin-di call https://host:8443 grpc.health.v1.Health/Check --tls-ca ca.pem
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

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

_METHOD = re.compile(r"^/?([A-Za-z_][\w.]*)/([A-Za-z_]\w*)$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="http://, https://, unix:// URL or HOST:PORT")
    parser.add_argument("method", metavar="METHOD", help="package.Service/Method")
    parser.add_argument(
        "body", metavar="JSON", nargs="?", default="{}", help="request message ('-': stdin)"
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    parser.add_argument(
        "--token", metavar="TOKEN", help="send 'Authorization: Bearer TOKEN' (a runtime token...)"
    )
    add_client_arguments(parser, timeout=10.0)


def _method_path(method: str) -> str:
    match = _METHOD.match(method.strip())
    if match is None:
        raise UsageError(f"expected METHOD as package.Service/Method, got {method!r}")
    return f"/{match.group(1)}/{match.group(2)}"


def _body(text: str) -> bytes:
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {text[1:]!r}: {exc.strerror}") from None
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the request is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise UsageError("the request must be a JSON object (a message), e.g. '{}'")
    return json.dumps(message).encode()


def _headers(args: argparse.Namespace, options: ClientOptions) -> list[tuple[str, str]]:
    headers = [
        ("content-type", "application/json"),
        ("connect-protocol-version", "1"),
        ("connect-timeout-ms", str(options.timeout_ms)),
    ]
    if args.token:
        headers.append(("authorization", f"Bearer {args.token}"))
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"expected a header as 'NAME: VALUE', got {raw!r}")
        headers.append((name.strip().lower(), value.strip()))
    return headers


def call(options: ClientOptions, path: str, body: bytes, headers: list[tuple[str, str]]) -> int:
    """POST one Connect unary JSON request; print the answer or the error; the exit code."""
    with options.http_client() as http:
        try:
            response = http.client.post(http.address + path, headers, body, timeout=options.timeout)
        except Exception as exc:
            if is_connection_failure(exc):
                print(f"failed to connect to {options.url}: {exc}", file=sys.stderr)
                return CONNECTION_FAILURE
            if isinstance(exc, TimeoutError):
                print(f"deadline_exceeded: no answer within {options.timeout:g} s",
                      file=sys.stderr)  # fmt: skip
                return RPC_FAILURE
            if isinstance(exc, OSError):  # the connection broke while waiting for the answer
                print(f"unavailable: {exc}", file=sys.stderr)
                return RPC_FAILURE
            raise
    if response.status != 200:
        code, message = error_of_response(response.status, response.content)
        print(f"{code}: {message}", file=sys.stderr)
        return RPC_FAILURE
    try:
        answer = json.loads(response.content or b"{}")
    except ValueError:
        print("internal: the answer is not JSON (is this a Connect server?)", file=sys.stderr)
        return RPC_FAILURE
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return OK


def run(args: argparse.Namespace) -> int:
    try:
        options = ClientOptions.from_args(args.url, args)
        path = _method_path(args.method)
        body = _body(args.body)
        headers = _headers(args, options)
        return call(options, path, body, headers)
    except UsageError as exc:
        print(f"plugin-di call: {exc}", file=sys.stderr)
        return INVALID_ARGUMENTS
