"""Header bytes that are not UTF-8: which refusal each gets (plugin_di.rpc.header_bytes)."""

from __future__ import annotations

from connectrpc.code import Code

from plugin_di.rpc.header_bytes import HeaderRefusal, check_request_bytes, undecodable


def test_plain_and_utf8_headers_pass() -> None:
    headers = [(b"content-type", b"application/proto"), (b"x-name", "caf\u00e9".encode())]
    assert undecodable(headers) is None
    assert check_request_bytes(headers, b"message=%FF") is None


def test_each_header_gets_its_refusal_and_no_bytes_in_the_message() -> None:
    assert check_request_bytes([(b"content-type", b"application/proto; charset=\xff")]) == (
        HeaderRefusal(None, "content-type is not valid UTF-8")
    )
    for name in (b"authorization", b"x-plugin-runtime-id", b"x-api-key"):
        refused = check_request_bytes([(name, b"Bearer \xff")])
        assert refused == HeaderRefusal(
            Code.UNAUTHENTICATED, f"{name.decode()} header is not valid UTF-8"
        )
    assert check_request_bytes([(b"X-Note", b"\xc3\x28")]) == HeaderRefusal(
        Code.INVALID_ARGUMENT, "x-note header is not valid UTF-8"
    )
    assert check_request_bytes([(b"\xff", b"v")]) == HeaderRefusal(
        Code.INVALID_ARGUMENT, "a request header name is not valid UTF-8"
    )
    assert check_request_bytes([], b"message=\xff") == HeaderRefusal(
        Code.INVALID_ARGUMENT, "query string is not valid UTF-8"
    )
