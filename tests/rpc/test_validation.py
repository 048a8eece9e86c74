"""Validators: the connect-plugin-go tables (section 3.6 / 9.23) plus hypothesis properties."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import semver
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from hypothesis import given
from hypothesis import strategies as st

from plugin_di.rpc.validation import (
    SemVer,
    validate_endpoint_path,
    validate_headers,
    validate_metadata,
    validate_plugin_name,
    validate_self_id,
    validate_service_type,
    validate_version,
)

NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9_.\-]*")
VERSION_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+(-[a-zA-Z0-9.\-]+)?")
names = st.from_regex(NAME_RE, fullmatch=True)


def rejects(check: Callable[[str], None], value: str, field: str, rule: str) -> None:
    with pytest.raises(ConnectError) as info:
        check(value)
    assert info.value.code is Code.INVALID_ARGUMENT
    assert info.value.message.startswith(f"{field}: ")
    assert rule in info.value.message


@pytest.mark.parametrize(
    "value", ["cache", "logger", "auth", "Cache-Service", "my_service", "service-v2", "api.v1"]
)
def test_service_type_valid(value: str) -> None:
    validate_service_type(value)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("", "must not be empty"),
        ("a" * 129, "at most 128 bytes"),
        ("../secrets", "invalid characters"),
        ("service/admin", "invalid characters"),
        ("service\\admin", "invalid characters"),
        ("service\x00", "invalid characters"),
        ("1service", "invalid characters"),
        ("service@admin", "invalid characters"),
        ("my service", "invalid characters"),
        ("a..b", "path traversal"),
        ("ok\n", "invalid characters"),  # `$` would have accepted the trailing newline
    ],
)
def test_service_type_invalid(value: str, rule: str) -> None:
    rejects(validate_service_type, value, "service_type", rule)


def test_length_counts_bytes_not_characters() -> None:
    validate_self_id("a" * 128)
    # 'é' is not allowed by the regex, so length fires first: 2 bytes each.
    rejects(validate_self_id, "a" + "é" * 64, "self_id", "at most 128 bytes (got 129)")
    validate_metadata({"k": "é" * 2048})
    rejects(lambda v: validate_metadata({"k": v}), "é" * 2049, "metadata[k]", "4096 bytes")


def test_self_id_and_plugin_name() -> None:
    for ok in ("kv", "kv-plugin_1.a", "A" * 128):
        validate_self_id(ok)
        validate_plugin_name(ok)
    rejects(validate_self_id, "", "self_id", "must not be empty")
    rejects(validate_self_id, "-x", "self_id", "invalid characters")
    rejects(validate_plugin_name, "x" * 129, "plugin_name", "at most 128")
    rejects(lambda v: validate_self_id(v, "handshake.self_id"), "9", "handshake.self_id", "")


@pytest.mark.parametrize(
    "value", ["1.0.0", "10.20.30", "1.0.0-beta", "2.1.3-rc.1", "1.0.0-alpha.2"]
)
def test_version_valid(value: str) -> None:
    validate_version(value)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("", "must not be empty"),
        ("1" * 120, "at most 64 bytes"),
        ("1.0", "semantic version"),
        ("v1.0.0", "semantic version"),
        ("1.0.0\x00", "semantic version"),
        ("1.0.0+build", "semantic version"),
        ("1.0.0\n", "semantic version"),
    ],
)
def test_version_invalid(value: str, rule: str) -> None:
    rejects(validate_version, value, "version", rule)


def test_endpoint_path() -> None:
    validate_endpoint_path("/")
    validate_endpoint_path("/services/kv/" + "a" * 243)
    rejects(validate_endpoint_path, "", "endpoint_path", "must not be empty")
    rejects(validate_endpoint_path, "api", "endpoint_path", "start with '/'")
    rejects(validate_endpoint_path, "/" + "a" * 256, "endpoint_path", "at most 256 bytes")
    rejects(validate_endpoint_path, "/a\x00", "endpoint_path", "null bytes")


def test_metadata_valid_edges() -> None:
    validate_metadata({})
    validate_metadata({"k" * 256: "v" * 4096})
    validate_metadata({f"k{i}": "v" for i in range(100)})


@pytest.mark.parametrize(
    ("metadata", "field", "rule"),
    [
        (
            {f"k{i}": "v" for i in range(101)},
            "metadata",
            "too many metadata entries: 101 (max: 100)",
        ),
        ({"": "v"}, "metadata[#0]", "key must not be empty"),
        ({"ok": "v", "k" * 257: "v"}, "metadata[#1]", "key must be at most 256 bytes"),
        ({"key@invalid": "v"}, "metadata[#0]", "key contains invalid characters"),
        ({"k": "v" * 4097}, "metadata[k]", "value must be at most 4096 bytes"),
        ({"k\x00": "v"}, "metadata[#0]", "invalid characters"),
        ({"k": "v\x00"}, "metadata[k]", "null bytes"),
    ],
)
def test_metadata_invalid(metadata: dict[str, str], field: str, rule: str) -> None:
    with pytest.raises(ConnectError) as info:
        validate_metadata(metadata)
    assert info.value.code is Code.INVALID_ARGUMENT
    assert info.value.message.startswith(f"{field}: ")
    assert rule in info.value.message


def test_headers() -> None:
    validate_headers([("authorization", "Bearer x"), ("x-plugin-runtime-id", "kv-1")])
    with pytest.raises(ConnectError, match=r"^headers\[#0\]: name"):
        validate_headers([("bad name", "v")])
    with pytest.raises(ConnectError, match=r"^headers\[x\]: value contains CR"):
        validate_headers([("x", "a\r\nb")])
    with pytest.raises(ConnectError, match=r"^headers\[x\]: value must be at most 10"):
        validate_headers([("x", "a" * 11)], max_value_bytes=10)
    with pytest.raises(ConnectError, match=r"^headers: headers must total at most 20"):
        validate_headers([("a", "b" * 10), ("c", "d" * 10)], max_total_bytes=20)


# --- hypothesis: the validators agree with the regex and byte-length rules -----------------


@given(st.text(max_size=140))
def test_service_type_matches_rules(value: str) -> None:
    ok = NAME_RE.fullmatch(value) is not None and len(value.encode()) <= 128 and ".." not in value
    if ok:
        validate_service_type(value)
    else:
        with pytest.raises(ConnectError) as info:
            validate_service_type(value)
        assert info.value.code is Code.INVALID_ARGUMENT


@given(st.one_of(names, st.text(max_size=140)))
def test_self_id_matches_rules(value: str) -> None:
    ok = NAME_RE.fullmatch(value) is not None and len(value.encode()) <= 128
    if ok:
        validate_self_id(value)
        validate_plugin_name(value)
    else:
        with pytest.raises(ConnectError, match=r"^self_id: "):
            validate_self_id(value)


@given(st.one_of(st.from_regex(VERSION_RE, fullmatch=True), st.text(max_size=70)))
def test_version_matches_rules(value: str) -> None:
    ok = VERSION_RE.fullmatch(value) is not None and len(value.encode()) <= 64
    if ok:
        validate_version(value)
        parsed = SemVer.parse(value)
        assert SemVer.parse(str(parsed)) == parsed  # leading zeros are dropped
    else:
        with pytest.raises(ConnectError, match=r"^version: "):
            validate_version(value)


@given(st.text(max_size=300))
def test_endpoint_path_matches_rules(value: str) -> None:
    ok = value.startswith("/") and len(value.encode()) <= 256 and "\x00" not in value
    if ok:
        validate_endpoint_path(value)
    else:
        with pytest.raises(ConnectError, match=r"^endpoint_path: "):
            validate_endpoint_path(value)


@given(st.dictionaries(st.one_of(names, st.text(max_size=5)), st.text(max_size=20), max_size=110))
def test_metadata_matches_rules(metadata: dict[str, str]) -> None:
    ok = len(metadata) <= 100 and all(
        NAME_RE.fullmatch(k) and len(k.encode()) <= 256 and "\x00" not in v
        for k, v in metadata.items()
    )
    if ok:
        validate_metadata(metadata)
    else:
        with pytest.raises(ConnectError, match=r"^metadata"):
            validate_metadata(metadata)


@given(
    st.lists(
        st.tuples(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), st.text(max_size=30)),
        max_size=10,
    )
)
def test_headers_matches_rules(headers: list[tuple[str, str]]) -> None:
    ok = all(not set(v) & {"\r", "\n", "\x00"} and len(v.encode()) <= 25 for _, v in headers)
    ok = ok and sum(len(n.encode()) + len(v.encode()) for n, v in headers) <= 200
    if ok:
        validate_headers(headers, max_value_bytes=25, max_total_bytes=200)
    else:
        with pytest.raises(ConnectError, match=r"^headers"):
            validate_headers(headers, max_value_bytes=25, max_total_bytes=200)


# --- SemVer ordering -------------------------------------------------------------------------


def test_semver_ordering() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "2.0.0",
        "9.0.0",
        "10.0.0",
    ]
    parsed = [SemVer.parse(v) for v in ordered]
    assert parsed == sorted(reversed(parsed))
    assert SemVer.parse("10.0.0") > SemVer.parse("9.0.0")
    assert SemVer.parse("1.2.3") == SemVer(1, 2, 3)
    with pytest.raises(ConnectError, match=r"^min_version: must be semantic"):
        SemVer.parse("v1", field="min_version")


version_parts = st.tuples(
    st.integers(0, 50),
    st.integers(0, 50),
    st.integers(0, 50),
    st.lists(
        st.one_of(st.integers(0, 30).map(str), st.from_regex(r"[a-z]{1,3}", fullmatch=True)),
        max_size=3,
    ),
)


@given(version_parts, version_parts)
def test_semver_order_is_consistent(
    a: tuple[int, int, int, list[str]], b: tuple[int, int, int, list[str]]
) -> None:
    va = SemVer(a[0], a[1], a[2], tuple(a[3]))
    vb = SemVer(b[0], b[1], b[2], tuple(b[3]))
    assert SemVer.parse(str(va)) == va
    assert (va < vb) + (vb < va) + (va == vb) == 1
    if a[:3] != b[:3]:
        assert (va < vb) == (a[:3] < b[:3])
    elif not a[3] and b[3]:
        assert vb < va


# --- SemVer against the semver package (a test oracle, not a runtime dependency) -------------

_numeric = st.integers(0, 40).map(str)
_identifier = st.one_of(_numeric, st.from_regex(r"[a-zA-Z-][a-zA-Z0-9-]{0,3}", fullmatch=True))
strict_versions = st.builds(
    lambda core, pre: ".".join(map(str, core)) + ("-" + ".".join(pre) if pre else ""),
    st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12)),
    st.lists(_identifier, max_size=3),
)


@given(strict_versions, strict_versions)
def test_semver_precedence_agrees_with_the_semver_package(a: str, b: str) -> None:
    ours = (SemVer.parse(a) > SemVer.parse(b)) - (SemVer.parse(a) < SemVer.parse(b))
    assert ours == semver.Version.parse(a).compare(semver.Version.parse(b))


@pytest.mark.parametrize(
    ("text", "same_as"),
    [("01.2.3", "1.2.3"), ("1.0.0-01", "1.0.0-1"), ("1.0.0-a..b", None), ("1.0.0--", None)],
)
def test_wire_versions_the_semver_package_refuses_still_parse_and_order(
    text: str, same_as: str | None
) -> None:
    """The wire rule (connect-plugin-go's) is wider than semver 2.0: why SemVer stays ours."""
    if text != "1.0.0--":  # semver's own regex takes "--" as a hyphen-only identifier
        with pytest.raises(ValueError, match="not valid SemVer"):
            semver.Version.parse(text)
    parsed = SemVer.parse(text)
    assert SemVer.parse("0.9.9") < parsed < SemVer.parse("1.2.4")
    if same_as is not None:
        assert parsed == SemVer.parse(same_as)
        assert not parsed < SemVer.parse(same_as)
        assert hash(parsed) == hash(SemVer.parse(same_as))
