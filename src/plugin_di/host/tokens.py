"""Runtime identities: ids, bearer tokens, their expiry and constant-time validation.

A runtime id is ``<self_id>-<8 hex chars>`` (32 random bits, retried until unique
among live identities: connect-plugin-go used 16 bits and let a collision
overwrite another plugin's token). A token is 32 random bytes in URL-safe
base64 with padding (44 characters), as in connect-plugin-go.

Validation is a dict lookup, an expiry check and ``hmac.compare_digest``: it
runs on the asyncio thread, so it takes no lock.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.rpc.validation import validate_self_id

DEFAULT_RUNTIME_TOKEN_TTL = 24 * 3600.0
_SUFFIX_BYTES = 4


def generate_token() -> str:
    """32 random bytes, URL-safe base64 with padding: 44 characters."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def normalize_self_id(self_id: str) -> str:
    """Lower-case, spaces to dashes; INVALID_ARGUMENT (ConnectError) when not a valid self id."""
    normalized = self_id.strip().lower().replace(" ", "-")
    validate_self_id(normalized)
    return normalized


@dataclass(frozen=True, slots=True)
class Identity:
    """A runtime id, its token and when the token stops being valid (clock seconds)."""

    runtime_id: str
    token: str
    expires_at: float


class TokenStore:
    """Issues runtime identities and validates the tokens presented with them.

    Satisfies the ``TokenValidator`` protocol (``validate(runtime_id, token) -> bool``).
    """

    def __init__(self, ttl: float = DEFAULT_RUNTIME_TOKEN_TTL, clock: Clock = SYSTEM_CLOCK) -> None:
        if ttl <= 0:
            raise ValueError(f"runtime token ttl must be positive, got {ttl}")
        self.ttl = ttl
        self._clock = clock
        # runtime id -> (token bytes, expires_at)
        self._tokens: dict[str, tuple[bytes, float]] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, runtime_id: object) -> bool:
        return runtime_id in self._tokens

    def new_runtime_id(self, self_id: str) -> str:
        """A fresh ``<self_id>-<hex>`` id not held by any live identity."""
        base = normalize_self_id(self_id)
        for _ in range(64):
            candidate = f"{base}-{secrets.token_hex(_SUFFIX_BYTES)}"
            if candidate not in self:
                return candidate
        raise RuntimeError(f"could not find a free runtime id for {base!r}")  # pragma: no cover

    def issue(self, self_id: str) -> Identity:
        """Mint a runtime id and token for ``self_id`` and store them."""
        runtime_id = self.new_runtime_id(self_id)
        return self.store(runtime_id, generate_token())

    def store(self, runtime_id: str, token: str) -> Identity:
        """Record an identity minted elsewhere (e.g. handed to a launched plugin)."""
        expires_at = self._clock.now() + self.ttl
        self._tokens[runtime_id] = (token.encode("ascii"), expires_at)
        return Identity(runtime_id, token, expires_at)

    def validate(self, runtime_id: str, token: str) -> bool:
        """True when ``token`` is the live token of ``runtime_id``; expired ones are purged."""
        entry = self._tokens.get(runtime_id)
        if entry is None:
            return False
        expected, expires_at = entry
        if self._clock.now() >= expires_at:
            del self._tokens[runtime_id]
            return False
        try:
            presented = token.encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(expected, presented)

    def expires_at(self, runtime_id: str) -> float | None:
        """When the token of ``runtime_id`` expires, or None when there is none."""
        entry = self._tokens.get(runtime_id)
        return entry[1] if entry else None

    def revoke(self, runtime_id: str) -> bool:
        """Forget an identity; True if it existed."""
        return self._tokens.pop(runtime_id, None) is not None

    def sweep(self) -> list[str]:
        """Purge every expired identity and return their runtime ids."""
        now = self._clock.now()
        expired = [rid for rid, (_, exp) in self._tokens.items() if now >= exp]
        for rid in expired:
            del self._tokens[rid]
        return expired
