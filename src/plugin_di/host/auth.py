"""Caller authentication for every host RPC and routed call but Handshake.

A caller presents ``Authorization: Bearer <token>`` and ``X-Plugin-Runtime-ID``;
the pair must be a live identity in the token store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from connectrpc.code import Code
from connectrpc.errors import ConnectError

RUNTIME_ID_HEADER = "x-plugin-runtime-id"
AUTHORIZATION_HEADER = "authorization"
_BEARER = "bearer "


class TokenValidator(Protocol):
    """Anything that can tell whether a token belongs to a runtime id."""

    def validate(self, runtime_id: str, token: str) -> bool: ...


HeaderGetter = Callable[[str], "str | None"]


def check_credentials(get: HeaderGetter, tokens: TokenValidator) -> str:
    """The caller's runtime id; raise UNAUTHENTICATED saying what is missing or wrong.

    ``get(name)`` returns a request header (lower-case name) or None.
    """
    runtime_id = get(RUNTIME_ID_HEADER)
    if not runtime_id:
        raise ConnectError(
            Code.UNAUTHENTICATED,
            "missing X-Plugin-Runtime-ID header: send the runtime id from the handshake",
        )
    authorization = get(AUTHORIZATION_HEADER) or ""
    if not authorization[: len(_BEARER)].lower() == _BEARER:
        raise ConnectError(
            Code.UNAUTHENTICATED,
            "missing 'Authorization: Bearer <runtime token>' header",
        )
    token = authorization[len(_BEARER) :].strip()
    # Runtime ids and tokens are ASCII: anything else is refused before a validator sees it
    # (some compare in constant time, which raises on other strings).
    if not (runtime_id.isascii() and token.isascii()) or not tokens.validate(runtime_id, token):
        raise ConnectError(
            Code.UNAUTHENTICATED,
            "invalid or expired runtime token for this runtime id: handshake with the host again",
        )
    return runtime_id
