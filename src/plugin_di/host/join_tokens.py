"""Join tokens: operator-issued credentials that admit a plugin from outside to the host.

A join token names one self id, the service types it may provide and an expiry, signed with
HMAC-SHA256 under the host's admission key::

    pdj1.<claims: base64url JSON>.<signature: base64url HMAC-SHA256 of "pdj1.<claims>">

Verification is stateless: any host holding the key file verifies it with no database and
no call to whoever issued it, so several hosts sharing one key all accept it. A token can be
used until it expires (a plugin that restarts joins again with it); to withdraw every token
before then, replace the key. The key file holds one base64url key per line (32 random bytes;
``#`` starts a comment): the first signs, every one verifies, so a new key can be put first
while tokens signed with the old one still work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from connectrpc.errors import ConnectError

from plugin_di.host.tokens import normalize_self_id
from plugin_di.rpc.validation import validate_service_type

log = logging.getLogger(__name__)

PREFIX = "pdj1"
KEY_BYTES = 32
_MAX_TOKEN_CHARS = 4096


class JoinTokenError(ValueError):
    """A join token that cannot be made or is not valid; the message says why."""


@dataclass(frozen=True)
class JoinClaims:
    """What a valid join token grants. Times are Unix seconds."""

    self_id: str
    provides: frozenset[str]
    expires_at: float
    issued_at: float
    token_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """base64url without padding; ValueError (binascii.Error) on any other character."""
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _sign(key: bytes, claims_b64: str) -> str:
    return _b64(hmac.new(key, f"{PREFIX}.{claims_b64}".encode("ascii"), hashlib.sha256).digest())


def looks_like_join_token(credential: str) -> bool:
    """True when ``credential`` has a join token's prefix (it may still be invalid)."""
    return credential.startswith(PREFIX + ".")


def issue(
    key: bytes, self_id: str, provides: Iterable[str], *, ttl: float, now: float
) -> str:  # fmt: skip
    """A join token for ``self_id`` that may provide ``provides``, valid for ``ttl`` seconds."""
    if ttl <= 0:
        raise JoinTokenError(f"a join token's ttl must be positive, got {ttl:g}")
    try:
        normalized = normalize_self_id(self_id)
        types = sorted(set(provides))
        for service_type in types:
            validate_service_type(service_type, "provides")
    except ConnectError as exc:
        raise JoinTokenError(exc.message) from None
    claims = {
        "sub": normalized,
        "provides": types,
        "iat": int(now),
        "exp": int(now + ttl),
        "jti": secrets.token_hex(8),
    }
    claims_b64 = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{PREFIX}.{claims_b64}.{_sign(key, claims_b64)}"


def verify(token: str, keys: Iterable[bytes], *, now: float) -> JoinClaims:
    """The claims of ``token`` if one of ``keys`` signed it and it has not expired."""
    parts = token.split(".")
    if (
        len(token) > _MAX_TOKEN_CHARS
        or not token.isascii()
        or len(parts) != 3
        or parts[0] != PREFIX
    ):
        raise JoinTokenError("malformed join token (expected pdj1.<claims>.<signature>)")
    _, claims_b64, signature = parts
    presented = signature.encode("ascii")
    if not any(hmac.compare_digest(_sign(key, claims_b64).encode(), presented) for key in keys):
        raise JoinTokenError("join token signature does not match this host's admission key")
    try:
        claims = json.loads(_unb64(claims_b64))
        parsed = JoinClaims(
            self_id=str(claims["sub"]),
            provides=frozenset(str(t) for t in claims["provides"]),
            expires_at=float(claims["exp"]),
            issued_at=float(claims["iat"]),
            token_id=str(claims["jti"]),
        )
    except (ValueError, KeyError, TypeError):
        raise JoinTokenError("join token claims do not decode") from None
    if now >= parsed.expires_at:
        raise JoinTokenError(f"join token {parsed.token_id} has expired")
    return parsed


# -- the key file -------------------------------------------------------------------------


def create_key_file(path: str | os.PathLike[str]) -> Path:
    """Write a new random key to ``path`` (mode 0600); refuse to overwrite an existing file."""
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise JoinTokenError(
            f"admission key file {os.fspath(target)!r} exists: remove it first, or put a new "
            "key on its first line to rotate"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(_b64(secrets.token_bytes(KEY_BYTES)) + "\n")
    return target


def load_keys(path: str | os.PathLike[str]) -> tuple[bytes, ...]:
    """Every key in the key file, the signing key first."""
    where = os.fspath(path)
    try:
        text = Path(path).read_text("ascii")
        mode = os.stat(path).st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
        raise JoinTokenError(f"cannot read admission key file {where!r}: {reason}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("admission key file %s can be read by other users: chmod 600 it", where)
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            key = _unb64(line)
        except ValueError:
            raise JoinTokenError(f"{where}:{number}: not a base64url key") from None
        if len(key) < KEY_BYTES:
            raise JoinTokenError(f"{where}:{number}: a key needs at least {KEY_BYTES} bytes")
        keys.append(key)
    if not keys:
        raise JoinTokenError(
            f"admission key file {where!r} holds no key: make one with "
            "'plugin-di join-token --new-key --key-file PATH'"
        )
    return tuple(keys)
