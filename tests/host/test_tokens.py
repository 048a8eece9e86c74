"""Runtime identities: format, uniqueness, constant-time validation and expiry (FakeClock)."""

from __future__ import annotations

import re

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.clock import FakeClock
from plugin_di.host.tokens import DEFAULT_RUNTIME_TOKEN_TTL, TokenStore, generate_token


def test_token_is_44_chars_urlsafe_base64() -> None:
    token = generate_token()
    assert len(token) == 44
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}=", token)
    assert generate_token() != token


def test_runtime_id_format_and_normalization() -> None:
    store = TokenStore()
    identity = store.issue("Cache Plugin")
    assert re.fullmatch(r"cache-plugin-[0-9a-f]{8}", identity.runtime_id)
    assert store.validate(identity.runtime_id, identity.token)


def test_invalid_self_id_is_invalid_argument() -> None:
    with pytest.raises(ConnectError) as info:
        TokenStore().issue("../etc")
    assert info.value.code is Code.INVALID_ARGUMENT
    assert "self_id" in info.value.message


def test_runtime_ids_unique_among_live() -> None:
    store = TokenStore()
    ids = {store.issue("p").runtime_id for _ in range(2000)}
    assert len(ids) == 2000


def test_wrong_token_and_unknown_id_rejected() -> None:
    store = TokenStore()
    a, b = store.issue("a"), store.issue("b")
    assert not store.validate(a.runtime_id, b.token)
    assert not store.validate("nobody-1234", a.token)
    assert not store.validate(a.runtime_id, "")
    assert not store.validate(a.runtime_id, "ünïcode")


def test_token_expires_and_is_purged_lazily() -> None:
    clock = FakeClock()
    store = TokenStore(ttl=0.1, clock=clock)
    identity = store.issue("cache-plugin")
    assert store.validate(identity.runtime_id, identity.token)
    clock.advance(0.099)
    assert store.validate(identity.runtime_id, identity.token)
    clock.advance(0.001)
    assert not store.validate(identity.runtime_id, identity.token)
    assert identity.runtime_id not in store


def test_sweep_purges_only_expired() -> None:
    clock = FakeClock()
    store = TokenStore(ttl=10, clock=clock)
    old = [store.issue("old") for _ in range(19)]
    clock.advance(5)
    fresh = store.issue("fresh")
    clock.advance(5)
    swept = store.sweep()
    assert sorted(swept) == sorted(i.runtime_id for i in old)
    assert len(store) == 1
    assert store.validate(fresh.runtime_id, fresh.token)


def test_default_ttl_is_24h() -> None:
    clock = FakeClock(100.0)
    store = TokenStore(clock=clock)
    identity = store.issue("x")
    assert DEFAULT_RUNTIME_TOKEN_TTL == 24 * 3600
    assert identity.expires_at == 100.0 + 24 * 3600


def test_store_external_identity_validates_and_revoke() -> None:
    store = TokenStore()
    token = generate_token()
    store.store("managed-1", token)
    assert store.validate("managed-1", token)
    assert store.revoke("managed-1")
    assert not store.validate("managed-1", token)
