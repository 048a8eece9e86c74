"""The one parse of a routed path, and what a registration lets through (unit level; the
escapes against real servers are in test_router_escape.py)."""

from __future__ import annotations

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from examples.kv.gen.kv.v1 import kv_pb2  # noqa: F401  (puts kv.v1.KVService in the pool)
from plugin_di.host.routepath import (
    RouteTarget,
    checked_query,
    parse_route_path,
    raw_path_of,
    service_methods,
    upstream_path,
)


def test_both_path_forms_parse() -> None:
    assert parse_route_path(b"/services/kv/kv-1a2b/kv.v1.KVService/Get") == RouteTarget(
        "kv", "kv-1a2b", "kv.v1.KVService", "Get"
    )
    assert parse_route_path(b"/services/kv/kv-1a2b/Get") == RouteTarget("kv", "kv-1a2b", "", "Get")


@pytest.mark.parametrize(
    "raw",
    [
        b"/services/kv/p/kv.v1.KVService/../connectplugin.v1.PluginControl/Shutdown",
        b"/services/kv/p/kv.v1.KVService/%2e%2e/connectplugin.v1.PluginControl/Shutdown",
        b"/services/kv/p/kv.v1.KVService/..%2fconnectplugin.v1.PluginControl/Shutdown",
        b"/services/kv/p/kv.v1.KVService/./Get",
        b"/services/kv/p/kv.v1.KVService//Get",
        b"/services/kv/p/kv.v1.KVService/Get/",
        b"/services/kv/p",
        b"/services/kv/p/",
        b"/services/kv/p/a/b/c",
        b"/services/k%76/p/Get",
        b"/services/kv/p/G\xc3\xa9t",
        b"/services/kv/p/Get\x00",
        b"/services/kv/p/kv.v1..KVService/Get",
        b"/services/kv/p/1kv.v1.KVService/Get",
        b"/services/k..v/p/Get",
        b"/services/kv/.../Get",
        b"/services/kv/p/Get;x",
        b"/%73ervices/kv/p/Get",
        b"/other/kv/p/Get",
        b"/services/kv/p/" + b"G" * 1100,
    ],
)
def test_malformed_paths_are_invalid_argument(raw: bytes) -> None:
    with pytest.raises(ConnectError) as refused:
        parse_route_path(raw)
    assert refused.value.code is Code.INVALID_ARGUMENT
    assert refused.value.message.startswith("invalid routed path")


def test_the_raw_path_is_what_the_caller_sent() -> None:
    scope = {"raw_path": b"/services/kv/p/%2e%2e/Get", "path": "/services/kv/p/../Get"}
    assert raw_path_of(scope) == b"/services/kv/p/%2e%2e/Get"
    assert raw_path_of({"path": "/services/kv/p/Get"}) == b"/services/kv/p/Get"


def test_queries_are_forwarded_only_when_a_url_may_carry_them() -> None:
    assert checked_query(b"connect=v1&encoding=json&message=%7B%7D") == (
        "connect=v1&encoding=json&message=%7B%7D"
    )
    assert checked_query(b"") == ""
    for bad in (b"a=<b>", b"a b", b"a#b", b"a=\xff", b"a\r\nb"):
        with pytest.raises(ConnectError) as refused:
            checked_query(bad)
        assert refused.value.code is Code.INVALID_ARGUMENT


def test_only_methods_of_the_registered_service_are_routed() -> None:
    assert service_methods("kv.v1.KVService") == {"Get", "Put", "Delete", "Watch", "List"}
    kv = "/kv.v1.KVService/"
    get = RouteTarget("kv", "p", "kv.v1.KVService", "Get")
    assert upstream_path(get, kv, "p") == "/kv.v1.KVService/Get"
    assert upstream_path(RouteTarget("kv", "p", "", "Watch"), kv, "p") == "/kv.v1.KVService/Watch"
    refusals = [
        (RouteTarget("kv", "p", "kv.v1.KVService", "Shutdown"), kv, Code.UNIMPLEMENTED),
        (RouteTarget("kv", "p", "connectplugin.v1.PluginControl", "Shutdown"), kv,
         Code.UNIMPLEMENTED),
        (RouteTarget("kv", "p", "", "Shutdown"), "/connectplugin.v1.PluginControl/",
         Code.PERMISSION_DENIED),
        (get, "/", Code.NOT_FOUND),
        (get, "/kv.v1.KVService/extra/", Code.NOT_FOUND),
    ]  # fmt: skip
    for target, endpoint_path, code in refusals:
        with pytest.raises(ConnectError) as refused:
            upstream_path(target, endpoint_path, "p")
        assert refused.value.code is code, (target, endpoint_path)
    # A service the descriptor pool does not know: any method name, in that service only.
    unknown = RouteTarget("x", "p", "", "Anything")
    assert upstream_path(unknown, "/acme.v1.Unknown/", "p") == "/acme.v1.Unknown/Anything"
