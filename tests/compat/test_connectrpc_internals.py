"""What plugin_di._compat.connectrpc reads and writes on connectrpc's objects, on real ones:
a generated ASGI app, a RequestContext and Headers. A connectrpc that renames a field fails
here rather than on the first call."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from connectrpc.request import Headers, RequestContext

from plugin_di._compat.connectrpc import (
    HOT_PATH_ATTRIBUTES,
    EndpointUnary,
    app_codecs,
    app_compressions,
    app_endpoints,
    app_metadata_interceptors,
    app_service,
    header_value,
    replace_app_codecs,
    request_headers,
    set_app_read_max_bytes,
)
from plugin_di.gen.grpc.health.v1 import health_pb2
from plugin_di.gen.grpc.health.v1.health_connect import HealthASGIApplication


class _Health:
    async def check(self, request: Any, ctx: Any) -> Any:
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    async def list(self, request: Any, ctx: Any) -> Any:
        return health_pb2.HealthListResponse()

    async def watch(self, request: Any, ctx: Any) -> Any:
        yield health_pb2.HealthCheckResponse()


def _app() -> HealthASGIApplication:
    return HealthASGIApplication(_Health())  # type: ignore[arg-type]


def test_the_app_fields_are_read() -> None:
    impl = _Health()
    app = HealthASGIApplication(impl)  # type: ignore[arg-type]
    assert app_service(app) is impl
    endpoints = app_endpoints(app, impl)
    assert isinstance(endpoints["/grpc.health.v1.Health/Check"], EndpointUnary)
    assert app_metadata_interceptors(app) == ()
    codecs = app_codecs(app)
    assert codecs is not None
    assert {"proto", "json"} <= set(codecs)
    compressions = app_compressions(app)
    assert compressions is not None
    assert "identity" in compressions


def test_objects_that_are_not_connectrpc_apps_have_none() -> None:
    assert app_service(object()) is None
    assert app_codecs(object()) is None
    assert app_compressions(object()) is None
    set_app_read_max_bytes(object(), 10)  # left alone, no error


def test_the_app_fields_are_written() -> None:
    app = _app()
    codecs = app_codecs(app)
    assert codecs is not None
    replace_app_codecs(app, {"proto": codecs["proto"]})
    assert app_codecs(app) == {"proto": codecs["proto"]}
    set_app_read_max_bytes(app, 1234)
    assert app._read_max_bytes == 1234


@pytest.mark.parametrize("owner", sorted(HOT_PATH_ATTRIBUTES))
def test_the_hot_path_attributes_exist(owner: str) -> None:
    module, _, name = owner.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    if cls is RequestContext:
        endpoint = app_endpoints(_app(), _Health())["/grpc.health.v1.Health/Check"]
        instance: Any = RequestContext(
            method=endpoint.method, http_method="POST", request_headers=Headers()
        )
    else:
        instance = cls()
    for attribute in HOT_PATH_ATTRIBUTES[owner]:
        assert hasattr(instance, attribute), f"{owner}.{attribute} is gone"


def test_request_headers_are_connectrpc_headers() -> None:
    headers = request_headers(
        [(b"content-type", b"application/proto"), (b"x-a", b"1"), (b"x-a", b"2")]
    )
    assert isinstance(headers, Headers)
    assert headers.get("Content-Type") == "application/proto"
    assert headers.getall("x-a") == ["1", "2"]
    assert header_value(headers, "x-a") == "1"
    assert header_value(headers, "x-missing") is None
    assert header_value(Headers({"X-B": "3"}), "x-b") == "3"


def test_request_headers_refuse_bytes_that_are_not_utf8() -> None:
    with pytest.raises(UnicodeDecodeError):
        request_headers([(b"x-a", b"\xff")])
