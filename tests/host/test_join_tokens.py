"""Join tokens: signed claims, expiry on an injected clock, tampering, keys and rotation."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from plugin_di.host import join_tokens
from plugin_di.host.join_tokens import JoinTokenError

NOW = 1_700_000_000.0
KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def _claims(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_a_token_carries_self_id_types_and_expiry() -> None:
    token = join_tokens.issue(KEY, "KV Store", ["kv", "cache", "kv"], ttl=3600, now=NOW)
    assert token.startswith("pdj1.")
    claims = join_tokens.verify(token, [KEY], now=NOW + 3599)
    assert claims.self_id == "kv-store"  # normalized as the handshake's self_id is
    assert claims.provides == {"kv", "cache"}
    assert (claims.issued_at, claims.expires_at) == (NOW, NOW + 3600)
    assert len(claims.token_id) == 16
    assert _claims(token)["provides"] == ["cache", "kv"]


def test_an_expired_token_is_refused() -> None:
    token = join_tokens.issue(KEY, "kv", ["kv"], ttl=60, now=NOW)
    with pytest.raises(JoinTokenError, match=r"join token [0-9a-f]{16} has expired"):
        join_tokens.verify(token, [KEY], now=NOW + 60)


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = join_tokens.issue(OTHER_KEY, "kv", ["kv"], ttl=60, now=NOW)
    with pytest.raises(JoinTokenError, match="signature does not match"):
        join_tokens.verify(token, [KEY], now=NOW)


def test_changed_claims_break_the_signature() -> None:
    token = join_tokens.issue(KEY, "kv", ["kv"], ttl=60, now=NOW)
    prefix, claims_b64, signature = token.split(".")
    claims = _claims(token)
    claims["provides"] = ["kv", "secrets"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(JoinTokenError, match="signature does not match"):
        join_tokens.verify(f"{prefix}.{forged}.{signature}", [KEY], now=NOW)
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(JoinTokenError, match="signature does not match"):
        join_tokens.verify(f"{prefix}.{claims_b64}.{flipped}", [KEY], now=NOW)


@pytest.mark.parametrize(
    "token",
    ["", "pdj1", "pdj1.a", "pdj1.a.b.c", "pdj2.a.b", "pdj1.é.b", "pdj1." + "a" * 5000 + ".b"],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(JoinTokenError, match="malformed join token"):
        join_tokens.verify(token, [KEY], now=NOW)


def test_a_signed_token_whose_claims_do_not_decode_is_refused() -> None:
    claims_b64 = base64.urlsafe_b64encode(b'{"sub": "kv"}').rstrip(b"=").decode()
    token = f"pdj1.{claims_b64}.{join_tokens._sign(KEY, claims_b64)}"
    with pytest.raises(JoinTokenError, match="claims do not decode"):
        join_tokens.verify(token, [KEY], now=NOW)


def test_bad_requests_for_a_token_are_refused() -> None:
    with pytest.raises(JoinTokenError, match="ttl must be positive"):
        join_tokens.issue(KEY, "kv", [], ttl=0, now=NOW)
    with pytest.raises(JoinTokenError, match="self_id"):
        join_tokens.issue(KEY, "../kv", [], ttl=60, now=NOW)
    with pytest.raises(JoinTokenError, match="provides"):
        join_tokens.issue(KEY, "kv", ["a/b"], ttl=60, now=NOW)


def test_key_file_is_private_never_overwritten_and_rotates(tmp_path: Path) -> None:
    path = join_tokens.create_key_file(tmp_path / "admission.key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(JoinTokenError, match="exists"):
        join_tokens.create_key_file(path)
    (old,) = join_tokens.load_keys(path)
    assert len(old) == 32
    token = join_tokens.issue(old, "kv", ["kv"], ttl=60, now=NOW)
    # rotation: a new key first signs; the old one, second, still verifies
    new = b"n" * 32
    path.write_text(
        "# rotated\n" + base64.urlsafe_b64encode(new).decode() + "\n" + path.read_text()
    )
    keys = join_tokens.load_keys(path)
    assert keys == (new, old)
    assert join_tokens.verify(token, keys, now=NOW).self_id == "kv"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("", "holds no key"),
        ("# only a comment\n", "holds no key"),
        ("not*base64\n", ":1: not a base64url key"),
        (base64.urlsafe_b64encode(b"short").decode() + "\n", ":1: a key needs at least 32"),
    ],
)
def test_bad_key_files_are_refused(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "k"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(JoinTokenError, match=error):
        join_tokens.load_keys(path)
    with pytest.raises(JoinTokenError, match="cannot read admission key file"):
        join_tokens.load_keys(tmp_path / "missing")


def test_a_key_file_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = join_tokens.create_key_file(tmp_path / "k")
    path.chmod(0o644)
    join_tokens.load_keys(path)
    assert "can be read by other users" in caplog.text
