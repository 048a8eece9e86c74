"""Codecs and compressions that fail without exception text (plugin_di.rpc.quiet_codecs)."""

from __future__ import annotations

import gzip

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication
from examples.kv.store import KVStore
from plugin_di.rpc.quiet_codecs import (
    MAX_JSON_DEPTH,
    QuietCodec,
    QuietCompression,
    json_too_deep,
    quiet_app,
)


def test_json_depth_counts_brackets_outside_strings() -> None:
    assert not json_too_deep(b'{"key": "a", "value": "eA=="}')
    assert not json_too_deep(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert json_too_deep(b"[" * (MAX_JSON_DEPTH + 1))
    assert json_too_deep(b'{"a":' * 1000)
    assert not json_too_deep(b'"' + b"[" * 5000 + b'"')
    assert not json_too_deep(b'["\\"' + b"[" * 5000 + b'"]')


def _app() -> KVServiceASGIApplication:
    app = KVServiceASGIApplication(KVStore())
    quiet_app(app)
    quiet_app(app)  # twice is harmless
    return app


def test_decode_errors_name_the_type_not_the_exception() -> None:
    codecs = _app()._codecs
    assert {type(c) for c in codecs.values()} == {QuietCodec}
    for name, data in [("json", b"null"), ("json", b'{"\xff": 1}'), ("proto", b"\xff\xff\xff")]:
        with pytest.raises(ConnectError) as info:
            codecs[name].decode(data, kv_pb2.GetRequest)
        assert info.value.code is Code.INVALID_ARGUMENT
        assert info.value.message == (
            f"unmarshal message: the request is not a valid {name} kv.v1.GetRequest"
        )
    with pytest.raises(ConnectError, match="nested deeper than 100 levels"):
        codecs["json"].decode(b"[" * 100_000, kv_pb2.GetRequest)
    assert codecs["proto"].decode(b"\x0a\x01k", kv_pb2.GetRequest).key == "k"


def test_a_response_that_does_not_encode_is_internal(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConnectError) as info:
        _app()._codecs["proto"].encode(object())
    assert (info.value.code, info.value.message) == (Code.INTERNAL, "internal error")
    assert "encoding a object response failed" in caplog.text


def test_decompression_errors_and_bombs() -> None:
    compressions = _app()._compressions
    assert compressions["identity"].name() == "identity"
    assert not isinstance(compressions["identity"], QuietCompression)  # recognized by class
    gzip_ = compressions["gzip"]
    with pytest.raises(ConnectError) as info:
        gzip_.decompress(b"not gzip", 1024)
    assert (info.value.code, info.value.message) == (
        Code.INVALID_ARGUMENT,
        "decompress: the request is not valid gzip",
    )
    with pytest.raises(ConnectError) as info:
        gzip_.decompress(gzip.compress(b"\0" * 1_000_000), 1024)
    assert info.value.code is Code.RESOURCE_EXHAUSTED
    assert gzip_.decompress(gzip_.compress(b"hello"), 1024) == b"hello"


def test_connectrpcs_shared_compressions_are_not_changed() -> None:
    plain = KVServiceASGIApplication(KVStore())
    _app()
    assert not any(isinstance(c, QuietCompression) for c in plain._compressions.values())
