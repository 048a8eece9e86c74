"""Input validation for names, versions, paths and metadata (connect-plugin-go's validation.go).

Every check raises ``ConnectError(INVALID_ARGUMENT, "<field>: <rule>")``. Regexes match the
whole string (``re.fullmatch``, never ``$``), and lengths are UTF-8 bytes, as in Go. The rules
and their order follow connect-plugin-go section 3.6; the error never echoes the bad value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from connectrpc.code import Code
from connectrpc.errors import ConnectError

__all__ = [
    "MAX_ENDPOINT_PATH_LEN",
    "MAX_HEADER_LIST_BYTES",
    "MAX_HEADER_VALUE_BYTES",
    "MAX_METADATA_ENTRIES",
    "MAX_METADATA_KEY_LEN",
    "MAX_METADATA_VALUE_LEN",
    "MAX_SELF_ID_LEN",
    "MAX_SERVICE_TYPE_LEN",
    "MAX_VERSION_LEN",
    "SemVer",
    "invalid",
    "validate_endpoint_path",
    "validate_headers",
    "validate_metadata",
    "validate_plugin_name",
    "validate_self_id",
    "validate_service_type",
    "validate_version",
]

MAX_METADATA_ENTRIES = 100
MAX_METADATA_KEY_LEN = 256
MAX_METADATA_VALUE_LEN = 4096
MAX_SERVICE_TYPE_LEN = 128
MAX_SELF_ID_LEN = 128
MAX_VERSION_LEN = 64
MAX_ENDPOINT_PATH_LEN = 256
# Not in connect-plugin-go: the sum of name+value bytes of all headers (HTTP/2's usual
# SETTINGS_MAX_HEADER_LIST_SIZE is 16 KiB) and the size of one header value.
MAX_HEADER_LIST_BYTES = 16384
MAX_HEADER_VALUE_BYTES = 8192

_NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9_.\-]*")
_VERSION_RE = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)(?:-([a-zA-Z0-9.\-]+))?")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+")


def invalid(field: str, rule: str) -> ConnectError:
    """The INVALID_ARGUMENT error for ``field`` breaking ``rule``."""
    return ConnectError(Code.INVALID_ARGUMENT, f"{field}: {rule}")


def _nbytes(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def _check_name(value: str, field: str, max_len: int, *, traversal: bool) -> None:
    if not value:
        raise invalid(field, "must not be empty")
    size = _nbytes(value)
    if size > max_len:
        raise invalid(field, f"must be at most {max_len} bytes (got {size})")
    if _NAME_RE.fullmatch(value) is None:
        raise invalid(
            field,
            "contains invalid characters (must start with a letter, then letters, digits, "
            "'_', '.' or '-')",
        )
    if traversal and (".." in value or "/" in value or "\\" in value):
        raise invalid(field, "contains path traversal characters ('..', '/' or '\\')")
    if "\x00" in value:  # unreachable after the regex; kept to mirror the Go rule list
        raise invalid(field, "contains null bytes")


def validate_service_type(value: str, field: str = "service_type") -> None:
    """A service type such as ``kv`` or ``api.v1``: 1-128 bytes, letter first, no ``..``."""
    _check_name(value, field, MAX_SERVICE_TYPE_LEN, traversal=True)


def validate_self_id(value: str, field: str = "self_id") -> None:
    """A plugin's self id: 1-128 bytes, letter first, then ``[a-zA-Z0-9_.-]``."""
    _check_name(value, field, MAX_SELF_ID_LEN, traversal=False)


def validate_plugin_name(value: str, field: str = "plugin_name") -> None:
    """A plugin name: the same rules as a self id."""
    _check_name(value, field, MAX_SELF_ID_LEN, traversal=False)


def validate_version(value: str, field: str = "version") -> None:
    """A semantic version ``MAJOR.MINOR.PATCH[-PRERELEASE]``: no ``v`` prefix, no ``+build``."""
    if not value:
        raise invalid(field, "must not be empty")
    size = _nbytes(value)
    if size > MAX_VERSION_LEN:
        raise invalid(field, f"must be at most {MAX_VERSION_LEN} bytes (got {size})")
    if _VERSION_RE.fullmatch(value) is None:
        raise invalid(field, "must be semantic version MAJOR.MINOR.PATCH[-PRERELEASE]")


def validate_endpoint_path(value: str, field: str = "endpoint_path") -> None:
    """An endpoint path: non-empty, starts with ``/``, at most 256 bytes, no NUL."""
    if not value:
        raise invalid(field, "must not be empty")
    if not value.startswith("/"):
        raise invalid(field, "must start with '/'")
    size = _nbytes(value)
    if size > MAX_ENDPOINT_PATH_LEN:
        raise invalid(field, f"must be at most {MAX_ENDPOINT_PATH_LEN} bytes (got {size})")
    if "\x00" in value:
        raise invalid(field, "contains null bytes")


def validate_metadata(metadata: Mapping[str, str], field: str = "metadata") -> None:
    """At most 100 entries; keys 1-256 bytes matching the name rule; values at most 4096 bytes.

    Entries are checked in iteration order, so the first bad entry is the one reported.
    """
    count = len(metadata)
    if count > MAX_METADATA_ENTRIES:
        raise invalid(field, f"too many metadata entries: {count} (max: {MAX_METADATA_ENTRIES})")
    for index, (key, value) in enumerate(metadata.items()):
        where = f"{field}[#{index}]"
        if not key:
            raise invalid(where, "key must not be empty")
        size = _nbytes(key)
        if size > MAX_METADATA_KEY_LEN:
            raise invalid(where, f"key must be at most {MAX_METADATA_KEY_LEN} bytes (got {size})")
        if _NAME_RE.fullmatch(key) is None:
            raise invalid(
                where,
                "key contains invalid characters (must start with a letter, then letters, "
                "digits, '_', '.' or '-')",
            )
        where = f"{field}[{key}]"
        size = _nbytes(value)
        if size > MAX_METADATA_VALUE_LEN:
            raise invalid(
                where, f"value must be at most {MAX_METADATA_VALUE_LEN} bytes (got {size})"
            )
        if "\x00" in key or "\x00" in value:
            raise invalid(where, "metadata contains null bytes (potential injection)")


def validate_headers(
    headers: Iterable[tuple[str, str]],
    field: str = "headers",
    *,
    max_total_bytes: int = MAX_HEADER_LIST_BYTES,
    max_value_bytes: int = MAX_HEADER_VALUE_BYTES,
) -> None:
    """HTTP header (name, value) pairs: token names, no CR/LF/NUL, bounded sizes.

    The total counts name and value bytes of every pair, as HTTP/2's header list size does
    (without its 32-byte per-entry overhead).
    """
    total = 0
    for index, (name, value) in enumerate(headers):
        if _HEADER_NAME_RE.fullmatch(name) is None:
            raise invalid(f"{field}[#{index}]", "name must be a non-empty HTTP token")
        size = _nbytes(value)
        if size > max_value_bytes:
            raise invalid(
                f"{field}[{name}]", f"value must be at most {max_value_bytes} bytes (got {size})"
            )
        if "\r" in value or "\n" in value or "\x00" in value:
            raise invalid(f"{field}[{name}]", "value contains CR, LF or NUL")
        total += _nbytes(name) + size
        if total > max_total_bytes:
            raise invalid(field, f"headers must total at most {max_total_bytes} bytes")


def _prerelease_key(ident: str) -> tuple[int, int, str]:
    # Semver 2.0 section 11: numeric identifiers sort numerically and before alphanumeric ones.
    if ident.isdigit():
        return (0, int(ident), "")
    return (1, 0, ident)


@dataclass(frozen=True, slots=True, eq=False)
class SemVer:
    """A parsed semantic version with semver 2.0 precedence (``10.0.0 > 9.0.0 > 9.0.0-rc.1``).

    Hand-written rather than the ``semver`` package: its parser refuses versions the wire
    accepts (``01.2.3``, ``1.0.0-01``, ``1.0.0-a..b``); see docs/dependencies.md. Equality is
    equal precedence (``1.0.0-01 == 1.0.0-1``), so that exactly one of ``<``, ``==``, ``>``
    holds for any two versions.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str, field: str = "version") -> SemVer:
        """Parse ``text``; a bad version raises INVALID_ARGUMENT naming ``field``."""
        validate_version(text, field)
        match = _VERSION_RE.fullmatch(text)
        assert match is not None  # validate_version checked it
        pre = match.group(4)
        return cls(
            int(match.group(1)),
            int(match.group(2)),
            int(match.group(3)),
            tuple(pre.split(".")) if pre else (),
        )

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release sorts after all of its prereleases.
        return (
            self.major,
            self.minor,
            self.patch,
            0 if self.prerelease else 1,
            tuple(_prerelease_key(p) for p in self.prerelease),
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() < other._key()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() > other._key()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() <= other._key()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() >= other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{'.'.join(self.prerelease)}" if self.prerelease else core
