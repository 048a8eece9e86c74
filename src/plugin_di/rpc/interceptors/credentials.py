"""Client-side credentials: the runtime identity and bearer tokens stamped on every call.

``ClientAuth`` sends the runtime credentials (``Authorization: Bearer <token>`` and
``X-Plugin-Runtime-ID: <id>``) read from a ``CredentialsSource`` at call time, so an identity
set later (SetRuntimeIdentity) is picked up; ``BearerClient`` sends a capability grant's or a
user's bearer token or API key. Both are metadata interceptors with ``*_sync`` twins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from connectrpc.request import RequestContext

from plugin_di.rpc.before_call import BeforeCall

__all__ = [
    "API_KEY_HEADER",
    "AUTHORIZATION_HEADER",
    "BEARER_PREFIX",
    "RUNTIME_ID_HEADER",
    "BearerClient",
    "ClientAuth",
    "Credentials",
    "CredentialsSource",
    "RuntimeCredentials",
    "api_key_client",
]

AUTHORIZATION_HEADER = "authorization"
RUNTIME_ID_HEADER = "x-plugin-runtime-id"
API_KEY_HEADER = "x-api-key"
BEARER_PREFIX = "Bearer "


@dataclass(frozen=True, slots=True)
class Credentials:
    """A runtime identity as issued by the host's handshake."""

    runtime_id: str
    token: str


@runtime_checkable
class CredentialsSource(Protocol):
    """Anything that yields the credentials to send now (None: send nothing)."""

    def current(self) -> Credentials | None: ...


class RuntimeCredentials:
    """A settable ``CredentialsSource``: empty until the identity arrives, changeable at runtime."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        self._credentials = credentials

    def current(self) -> Credentials | None:
        return self._credentials

    def set(self, runtime_id: str, token: str) -> None:
        """Use this identity for every following call (SetRuntimeIdentity)."""
        self._credentials = Credentials(runtime_id, token)

    def clear(self) -> None:
        self._credentials = None


class ClientAuth(BeforeCall):
    """Client metadata interceptor adding the runtime id and bearer token of ``source``."""

    def __init__(self, source: CredentialsSource) -> None:
        self._source = source

    def before(self, ctx: RequestContext[Any, Any]) -> None:
        headers = ctx.request_headers
        creds = self._source.current()
        if creds is not None:
            headers[AUTHORIZATION_HEADER] = BEARER_PREFIX + creds.token
            headers[RUNTIME_ID_HEADER] = creds.runtime_id


class BearerClient(BeforeCall):
    """Client metadata interceptor sending ``<header>: <prefix><token>``.

    ``token`` is a string or a callable read at every call (a capability grant that is
    renewed, say); an empty or None token sends nothing.
    """

    def __init__(
        self,
        token: str | Callable[[], str | None],
        *,
        header: str = AUTHORIZATION_HEADER,
        prefix: str = BEARER_PREFIX,
    ) -> None:
        self._token = token
        self._header = header
        self._prefix = prefix

    def before(self, ctx: RequestContext[Any, Any]) -> None:
        headers = ctx.request_headers
        token = self._token() if callable(self._token) else self._token
        if token:
            headers[self._header] = self._prefix + token


def api_key_client(key: str | Callable[[], str | None]) -> BearerClient:
    """A client interceptor sending ``X-API-Key: <key>``."""
    return BearerClient(key, header=API_KEY_HEADER, prefix="")
