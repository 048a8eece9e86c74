"""Runtime identities every host can check: the token's digest, kept in the shared state.

Why checked against the store and not signed: an identity has to be in the store anyway
(its plugin record, its grant, its registrations and its lease all hang on the runtime
id), so a signed token would still need that lookup to know the identity is alive, plus a
key set to distribute and rotate and a revocation list that outlives every token. Here
a revocation (or the end of a lease) is one deletion that the change feed brings to
every host, and validation is the same dict lookup and constant-time compare as on one
host. The store holds SHA-256 digests of the 256-bit random tokens, never the tokens.

Each validated call extends the caller's lease (at most every quarter of the lease TTL,
sent with the next writes): a plugin that keeps calling its hosts stays registered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

from plugin_di.clock import SYSTEM_CLOCK, WALL_CLOCK, Clock
from plugin_di.host.shared.state import SharedState
from plugin_di.host.tokens import DEFAULT_RUNTIME_TOKEN_TTL, Identity, TokenStore


def token_digest(token: str) -> str:
    """The hex SHA-256 of a bearer token (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _owner(key: str, value: object) -> str:
    return key


class SharedTokenStore(TokenStore):
    """A `TokenStore` whose identities live in the shared state, each with a lease.

    ``clock`` is wall time (token expiry is compared across hosts); ``lease_ttl`` is how
    long an identity and everything it owns outlive its last sign of life.
    """

    def __init__(
        self,
        state: SharedState,
        ttl: float = DEFAULT_RUNTIME_TOKEN_TTL,
        clock: Clock = WALL_CLOCK,
        *,
        lease_ttl: float,
        host_id: str = "",
        monotonic: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(ttl, clock)
        self.lease_ttl = lease_ttl
        self.host_id = host_id
        self._state = state
        # runtime id -> (token digest, expires_at, id of the host that issued it)
        self._identities = state.map("identities", _encode, _decode, owner=_owner)
        self._touched: dict[str, float] = {}
        # runtime id -> (digest, the token that matched it): later checks of the same token
        # compare tokens (constant time), not hashes; the hot path stays as cheap as on one host
        self._matched: dict[str, tuple[str, str]] = {}
        self._monotonic = monotonic.now
        self.on_removed: list[Callable[[str], None]] = []
        self._identities.on_change(self._changed)

    def _changed(self, runtime_id: str, old: object, new: object) -> None:
        self._matched.pop(runtime_id, None)
        if new is None:
            self._touched.pop(runtime_id, None)
            for listener in list(self.on_removed):
                listener(runtime_id)

    def __len__(self) -> int:
        return len(self._identities)

    def __contains__(self, runtime_id: object) -> bool:
        return runtime_id in self._identities

    def store(self, runtime_id: str, token: str) -> Identity:
        """Record an identity and start its lease (capped at the token's expiry)."""
        expires_at = self._clock.now() + self.ttl
        lease = self._state.lease(runtime_id, self.lease_ttl, cap=expires_at)
        entry = (token_digest(token), expires_at, self.host_id)
        self._identities.put(runtime_id, entry, extra=[lease])
        self._matched[runtime_id] = (entry[0], token)
        self._touched[runtime_id] = self._monotonic()
        return Identity(runtime_id, token, expires_at)

    def validate(self, runtime_id: str, token: str) -> bool:
        entry = self._identities.get(runtime_id)
        if entry is None:
            return False
        digest, expires_at, _ = entry
        if self._clock.now() >= expires_at:
            return False  # the lease ends with the token: the reaper removes it
        matched = self._matched.get(runtime_id)
        if matched is not None and matched[0] is digest:
            if not hmac.compare_digest(matched[1].encode(), token.encode("utf-8", "replace")):
                return False
        elif hmac.compare_digest(digest, token_digest(token)):
            self._matched[runtime_id] = (digest, token)
        else:
            return False
        now = self._monotonic()
        if now - self._touched.get(runtime_id, 0.0) >= self.lease_ttl / 4:
            self._touched[runtime_id] = now
            self._state.touch(runtime_id, self.lease_ttl, expires_at)
        return True

    def keep_alive(self, runtime_id: str) -> None:
        """Extend the lease of ``runtime_id`` now (its host vouches that it lives)."""
        entry = self._identities.get(runtime_id)
        if entry is not None:
            self._touched[runtime_id] = self._monotonic()
            self._state.touch(runtime_id, self.lease_ttl, entry[1])

    def host_of(self, runtime_id: str) -> str | None:
        """The id of the host that issued ``runtime_id``'s identity."""
        entry = self._identities.get(runtime_id)
        return entry[2] if entry else None

    def expires_at(self, runtime_id: str) -> float | None:
        entry = self._identities.get(runtime_id)
        return entry[1] if entry else None

    def revoke(self, runtime_id: str) -> bool:
        self._touched.pop(runtime_id, None)
        self._matched.pop(runtime_id, None)
        return self._identities.delete(runtime_id) is not None

    def sweep(self) -> list[str]:
        """Nothing to do here: expired identities end with their lease, in the store."""
        return []


def _encode(entry: tuple[str, float, str]) -> str:
    return json.dumps(list(entry))


def _decode(text: str) -> tuple[str, float, str]:
    digest, expires_at, host_id = json.loads(text)
    return str(digest), float(expires_at), str(host_id)
