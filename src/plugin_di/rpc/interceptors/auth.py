"""Server-side authentication, and the caller's identity for handlers.

(The client side, which sends the credentials, is in ``credentials``.)

``ServerAuth`` is a metadata interceptor: at the front of a server's list it runs
before the request body is read. It asks its ``Authenticator``s (runtime token, bearer, API
key, mTLS peer certificate) and exposes the winner to handlers through ``current_identity()``.
Every rejection is UNAUTHENTICATED with a fixed message; no validator text reaches the wire.
``ServerAuth`` carries ``*_sync`` twins, so one object serves sync and async stacks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import Headers, RequestContext

from plugin_di._compat.connectrpc import header_value
from plugin_di.rpc.interceptors.credentials import (
    API_KEY_HEADER,
    AUTHORIZATION_HEADER,
    BEARER_PREFIX,
    RUNTIME_ID_HEADER,
)

__all__ = [
    "AuthIdentity",
    "Authenticator",
    "BearerAuthenticator",
    "MTLSAuthenticator",
    "RuntimeTokenAuthenticator",
    "ServerAuth",
    "TokenValidator",
    "api_key_authenticator",
    "current_identity",
    "procedure_of",
    "require_identity",
]

_log = logging.getLogger(__name__)

_BEARER = BEARER_PREFIX


def procedure_of(ctx: RequestContext[Any, Any]) -> str:
    """``/package.Service/Method`` for the call in ``ctx``."""
    return f"/{ctx.method.service_name}/{ctx.method.name}"


def _unauthenticated(message: str) -> ConnectError:
    return ConnectError(Code.UNAUTHENTICATED, message)


# --- identity exposed to handlers --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthIdentity:
    """Who made the call: ``identity`` (runtime id, user, certificate name) and how we know."""

    identity: str
    provider: str
    claims: Mapping[str, str] = field(default_factory=dict)


_IDENTITY: ContextVar[AuthIdentity | None] = ContextVar("plugin_di_auth_identity", default=None)


def current_identity() -> AuthIdentity | None:
    """The identity ``ServerAuth`` established for the call being handled, if any."""
    return _IDENTITY.get()


def require_identity() -> AuthIdentity:
    """The current identity, or UNAUTHENTICATED when the call was not authenticated."""
    identity = _IDENTITY.get()
    if identity is None:
        raise _unauthenticated("authentication required")
    return identity


# --- server side ---------------------------------------------------------------------------


@runtime_checkable
class TokenValidator(Protocol):
    """Checks a runtime id's token (the host's token store; it compares in constant time)."""

    def validate(self, runtime_id: str, token: str) -> bool: ...


class Authenticator(Protocol):
    """One way of establishing who is calling; raises UNAUTHENTICATED when it cannot."""

    def authenticate(self, ctx: RequestContext[Any, Any]) -> AuthIdentity: ...


def _bearer_token(headers: Headers, header: str, prefix: str) -> str:
    value = header_value(headers, header)
    if not value:
        raise _unauthenticated(f"missing {header} header")
    if prefix:
        if not value.startswith(prefix):
            raise _unauthenticated(f"invalid token format, expected {prefix.strip()!r} prefix")
        value = value[len(prefix) :]
    if not value:
        raise _unauthenticated(f"empty token in {header} header")
    if not value.isascii():
        # Tokens are ASCII (RFC 6750's token68); validators that compare in constant time
        # raise on anything else, which must not turn a bad credential into INTERNAL.
        raise _unauthenticated(f"invalid token format in {header} header: not ASCII")
    return value


class RuntimeTokenAuthenticator:
    """Runtime identity tokens: ``X-Plugin-Runtime-ID`` plus ``Authorization: Bearer``."""

    _CACHE_MAX = 4096

    def __init__(self, validator: TokenValidator) -> None:
        self._validate = validator.validate
        self._identities: dict[str, AuthIdentity] = {}  # immutable values, reused per id

    def authenticate(self, ctx: RequestContext[Any, Any]) -> AuthIdentity:
        headers = ctx.request_headers
        runtime_id = header_value(headers, RUNTIME_ID_HEADER)
        if not runtime_id:
            raise _unauthenticated(f"missing {RUNTIME_ID_HEADER} header")
        if not runtime_id.isascii():
            raise _unauthenticated(f"invalid {RUNTIME_ID_HEADER} header: not ASCII")
        token = _bearer_token(headers, AUTHORIZATION_HEADER, _BEARER)
        try:
            ok = self._validate(runtime_id, token)
        except Exception:
            _log.exception("token validator failed for %s", procedure_of(ctx))
            raise ConnectError(Code.INTERNAL, "token validation failed") from None
        if not ok:
            raise _unauthenticated("invalid or expired runtime token")
        identity = self._identities.get(runtime_id)
        if identity is None:
            if len(self._identities) >= self._CACHE_MAX:
                self._identities.clear()
            identity = self._identities[runtime_id] = AuthIdentity(runtime_id, "runtime-token")
        return identity


class BearerAuthenticator:
    """A bearer (or API-key) scheme for users' own plugins.

    ``validate(token)`` returns the caller's identity (a name or an ``AuthIdentity``) or None
    to reject it. Exceptions it raises become INTERNAL without their text.
    """

    def __init__(
        self,
        validate: Callable[[str], AuthIdentity | str | None],
        *,
        header: str = AUTHORIZATION_HEADER,
        prefix: str = _BEARER,
        provider: str = "bearer",
    ) -> None:
        self._validate = validate
        self._header = header
        self._prefix = prefix
        self._provider = provider

    def authenticate(self, ctx: RequestContext[Any, Any]) -> AuthIdentity:
        token = _bearer_token(ctx.request_headers, self._header, self._prefix)
        try:
            result = self._validate(token)
        except ConnectError:
            raise
        except Exception:
            _log.exception("%s validator failed for %s", self._provider, procedure_of(ctx))
            raise ConnectError(Code.INTERNAL, "token validation failed") from None
        if result is None:
            raise _unauthenticated(f"invalid {self._provider} credentials")
        if isinstance(result, str):
            return AuthIdentity(result, self._provider)
        return result


def api_key_authenticator(
    validate: Callable[[str], AuthIdentity | str | None],
) -> BearerAuthenticator:
    """``X-API-Key: <key>`` checked by ``validate``."""
    return BearerAuthenticator(validate, header=API_KEY_HEADER, prefix="", provider="api-key")


class MTLSAuthenticator:
    """The TLS peer certificate: present, and (if given) one of the allowed fingerprints/names.

    The certificate comes from ``plugin_di.rpc.tls.peer_certificate()``, which plugin-di's
    server fills in on TLS connections (``PeerCertMiddleware`` on other ASGI servers).
    Identity is the certificate's common name, else its first DNS name; claims:
    ``fingerprint`` (SHA-256 hex), ``dns_names`` (comma-separated), ``serial_number``,
    ``not_after`` (ISO 8601) and ``organization`` when present.
    """

    def __init__(
        self,
        *,
        allowed_fingerprints: Iterable[str] | None = None,
        allowed_names: Iterable[str] | None = None,
    ) -> None:
        self._fingerprints = (
            None
            if allowed_fingerprints is None
            else frozenset(f.lower().replace(":", "") for f in allowed_fingerprints)
        )
        self._names = None if allowed_names is None else frozenset(allowed_names)

    def authenticate(self, ctx: RequestContext[Any, Any]) -> AuthIdentity:
        from plugin_di.rpc import tls  # cryptography is loaded only when mTLS is used

        peer = tls.peer_certificate()
        if peer is None:
            raise _unauthenticated("client certificate required")
        if self._fingerprints is not None and peer.fingerprint not in self._fingerprints:
            raise _unauthenticated("client certificate is not trusted")
        if self._names is not None and peer.name not in self._names:
            raise _unauthenticated("client certificate is not trusted")
        if not peer.name:
            raise _unauthenticated("client certificate has no common name or DNS name")
        claims = {
            "fingerprint": peer.fingerprint,
            "dns_names": ",".join(peer.dns_names),
            "serial_number": str(peer.serial_number),
            "not_after": peer.not_after.isoformat(),
        }
        if peer.organization:
            claims["organization"] = peer.organization
        return AuthIdentity(peer.name, "mtls", claims)


_AuthToken = Token[AuthIdentity | None] | None


class ServerAuth:
    """Server metadata interceptor running ``authenticators``; put it first in the list.

    ``mode="any"``: the first authenticator that succeeds wins (the handler runs once);
    if all fail, the last error is raised. ``mode="all"``: every one must succeed (for
    example mTLS and a runtime token); the identity is the first one's, claims merged.
    ``public`` lists procedures (``/pkg.Service/Method``) or services (``pkg.Service``) that
    skip authentication.
    """

    def __init__(
        self,
        *authenticators: Authenticator,
        mode: Literal["any", "all"] = "any",
        public: Iterable[str] = (),
    ) -> None:
        if not authenticators:
            raise ValueError("ServerAuth needs at least one authenticator")
        if mode not in ("any", "all"):
            raise ValueError(f"ServerAuth mode must be 'any' or 'all', got {mode!r}")
        self._authenticators = authenticators
        self._all = mode == "all"
        self._public = frozenset(public)

    def authenticate(self, ctx: RequestContext[Any, Any]) -> AuthIdentity | None:
        """The caller's identity, None for a public procedure; raises UNAUTHENTICATED."""
        if self._public and (
            ctx.method.service_name in self._public or procedure_of(ctx) in self._public
        ):
            return None
        if self._all:
            found = [a.authenticate(ctx) for a in self._authenticators]
            claims: dict[str, str] = {}
            for identity in reversed(found):
                claims.update(identity.claims)
            return AuthIdentity(found[0].identity, found[0].provider, claims)
        error: ConnectError | None = None
        for authenticator in self._authenticators:
            try:
                return authenticator.authenticate(ctx)
            except ConnectError as e:
                if e.code is not Code.UNAUTHENTICATED:
                    raise
                error = e
        assert error is not None
        raise error

    async def on_start(self, ctx: RequestContext[Any, Any]) -> _AuthToken:
        return self.on_start_sync(ctx)

    async def on_end(
        self, token: _AuthToken, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        self.on_end_sync(token, ctx, error)

    def on_start_sync(self, ctx: RequestContext[Any, Any]) -> _AuthToken:
        identity = self.authenticate(ctx)
        return None if identity is None else _IDENTITY.set(identity)

    def on_end_sync(
        self, token: _AuthToken, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        if token is not None:
            # ValueError: ended in another context, which dies with the call anyway.
            with contextlib.suppress(ValueError):
                _IDENTITY.reset(token)
