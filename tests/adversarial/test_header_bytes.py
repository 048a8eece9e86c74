"""Issue 13, defect 2: header bytes that are not UTF-8 get their code, never a 500 and never
exception text, on every method of the host and of a served plugin, in every protocol, on
every server kind, and in-process."""

from __future__ import annotations

from typing import Any

import pytest

from examples.kv.plugin import make_plugin
from plugin_di.host.server import Host
from plugin_di.plugin.server import PluginServer

from .support.answers import answer_code, leaks
from .support.calls import PROTOCOLS, call_code, content_type, supports
from .support.servers import Method, Surface, methods_of
from .support.wire import Reply

ROUTED = Method("/services/kv/kv-00000000/kv.v1.KVService/Get", False, False)

# (case, headers added to the call; None marks the content type, which gets a bad parameter)
CASES: dict[str, tuple[list[tuple[bytes, bytes]], str]] = {
    "content type": ([], "http-415"),
    "bearer token": (
        [(b"authorization", b"Bearer t\xff\xfe"), (b"x-plugin-runtime-id", b"adversary-1")],
        "unauthenticated",
    ),
    "runtime id": (
        [(b"authorization", b"Bearer token"), (b"x-plugin-runtime-id", b"\xc3\x28")],
        "unauthenticated",
    ),
    "other header": ([(b"x-note", b"caf\xe9")], "invalid_argument"),
}


def _methods(surface: Surface) -> list[Method]:
    if surface.name.startswith("host"):
        return [*methods_of(Host().app.service_names), ROUTED]
    return methods_of(PluginServer(make_plugin()).app.service_names)


@pytest.mark.parametrize("case", list(CASES))
async def test_undecodable_header_gets_its_code_on_every_method(
    surface: Surface, case: str
) -> None:
    extra, expected = CASES[case]
    wrong: list[str] = []
    for method in _methods(surface):
        for protocol in PROTOCOLS:
            if not supports(surface, protocol):
                continue
            headers = list(extra)
            if case == "content type":
                bad = content_type(protocol, method) + b"; charset=\xff"
                headers.append((b"content-type", bad))
            code, reply = await call_code(surface, protocol, method, b"", headers)
            found = leaks(reply)
            # The fast channel's router checks credentials (none sent) before the media type.
            allowed = {expected, "unauthenticated"} if method is ROUTED else {expected}
            if code not in allowed or found or reply.status >= 500:
                wrong.append(f"{method.path} {protocol}: {code} {reply.status} {found}")
    assert not wrong, "\n".join(wrong)


async def _asgi(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> Reply:
    """One request through an ASGI app in this process, no socket."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "extensions": {"http.response.trailers": {}},
    }
    sent: list[dict[str, Any]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return requests.pop(0) if requests else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    trailers = [h for m in sent if m["type"] == "http.response.trailers" for h in m["headers"]]
    return Reply(start["status"], list(start["headers"]), body, trailers)


@pytest.mark.parametrize("role", ["host", "plugin"])
async def test_undecodable_headers_in_process(role: str) -> None:
    app = Host().app if role == "host" else PluginServer(make_plugin()).app
    path = (
        "/connectplugin.v1.ServiceRegistry/DiscoverService"
        if role == "host"
        else ("/kv.v1.KVService/Get")
    )
    for headers, expected in [
        ([(b"content-type", b"application/proto; charset=\xff")], "http-415"),
        ([(b"content-type", b"application/proto"), (b"authorization", b"\xff")], "unauthenticated"),
        ([(b"content-type", b"application/grpc-web"), (b"x-note", b"\xff")], "invalid_argument"),
    ]:
        protocol = "grpc-web" if b"application/grpc-web" in headers[0][1] else "connect"
        reply = await _asgi(app, path, headers)
        assert (answer_code(reply, protocol), leaks(reply)) == (expected, [])
