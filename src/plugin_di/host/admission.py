"""Admission: who may take a runtime identity from the host, and what it may register.

A handshake that asks for an identity (it sends a ``self_id``) is admitted by the first of:

1. a **join token** (``Authorization: Bearer pdj1...`` on the Handshake call): signed by
   the host's admission key, bound to a self id, the service types it may provide and an
   expiry (`plugin_di.host.join_tokens`; made with ``plugin-di join-token``);
2. a **launch secret** (the same header): a per-launch credential that an app registered
   with its in-process host when it launched the plugin (`Admission.expect_launch`);
3. a **client certificate** verified against the host's client CA, whose name has an
   ``allow_cert`` entry (the name must be the handshake's self id);
4. an **allow-list** entry for the handshake's self id (for peers that cannot send a
   credential, such as connect-plugin-go plugins);
5. **open registration** (development only): anyone, any service type.

Anything else is refused with UNAUTHENTICATED (or PERMISSION_DENIED for a credential bound
to another self id) saying how to get admitted. What admission grants is the only thing
RegisterService allows; a plugin's own ``plugin-di.provides`` claim grants nothing.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.clock import WALL_CLOCK, Clock
from plugin_di.host import join_tokens
from plugin_di.host.tokens import normalize_self_id
from plugin_di.rpc.validation import validate_service_type

if TYPE_CHECKING:
    from plugin_di.settings import Settings

log = logging.getLogger(__name__)

_BEARER = "bearer "


def how_to_join(self_id: str) -> str:
    """What a refused plugin (or its operator) can do about it."""
    return (
        "the host admits a plugin by a join token (set PLUGIN_DI_JOIN_TOKEN; the operator "
        f"makes one with 'plugin-di join-token --self-id {self_id} --provides TYPES'), a "
        "client certificate with an --allow-cert entry, or an allow-list entry for its "
        f"self_id (plugin-di host --allow {self_id}=TYPES)"
    )


class AdmittedBy(enum.Enum):
    """The admission path that let a plugin in."""

    JOIN_TOKEN = "join token"
    LAUNCH_SECRET = "launch secret"
    CLIENT_CERTIFICATE = "client certificate"
    ALLOW_LIST = "allow-list"
    OPEN_REGISTRATION = "open registration"
    PLATFORM = "platform"


@dataclass(frozen=True)
class AllowEntry:
    """A self id (or certificate name) and the service types it may provide."""

    self_id: str
    provides: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str, where: str = "--allow") -> AllowEntry:
        """``SELF_ID=TYPE[,TYPE]`` (``SELF_ID=`` admits a plugin that provides nothing)."""
        self_id, sep, types = text.partition("=")
        if not sep:
            raise ValueError(f"{where} {text!r}: expected SELF_ID=TYPE[,TYPE]")
        return cls.of(self_id, filter(None, (t.strip() for t in types.split(","))), where)

    @classmethod
    def of(cls, self_id: str, provides: Iterable[str], where: str = "allow") -> AllowEntry:
        """A checked entry: a valid self id and valid service types."""
        try:
            normalized = normalize_self_id(self_id)
            types = frozenset(provides)
            for service_type in types:
                validate_service_type(service_type, "provides")
        except ConnectError as exc:
            raise ValueError(f"{where} {self_id!r}: {exc.message}") from None
        return cls(normalized, types)


def parse_allow_entries(text: str, where: str) -> tuple[AllowEntry, ...]:
    """Entries separated by ``;`` or whitespace, as in ``PLUGIN_DI_ADMISSION_ALLOW``."""
    return tuple(AllowEntry.parse(part, where) for part in re.split(r"[;\s]+", text) if part)


@dataclass(frozen=True)
class AdmissionPolicy:
    """How the host admits plugins (`Host(admission=...)`; Settings ``ADMISSION_*``).

    ``key_file``: the admission key file (join tokens are refused without one);
    ``allow``: self ids admitted with no credential; ``allow_cert``: client certificate
    names admitted (the host must serve TLS with ``client_ca``); ``open_registration``:
    admit anyone to register anything (development only).
    """

    key_file: Path | None = None
    allow: tuple[AllowEntry, ...] = ()
    allow_cert: tuple[AllowEntry, ...] = ()
    client_ca: Path | None = None
    open_registration: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> AdmissionPolicy:
        """The policy of ``PLUGIN_DI_ADMISSION_*`` and ``PLUGIN_DI_OPEN_REGISTRATION``."""
        return cls(
            key_file=settings.admission_key_file,
            allow=parse_allow_entries(settings.admission_allow, "PLUGIN_DI_ADMISSION_ALLOW"),
            allow_cert=parse_allow_entries(
                settings.admission_allow_cert, "PLUGIN_DI_ADMISSION_ALLOW_CERT"
            ),
            client_ca=settings.admission_client_ca,
            open_registration=settings.open_registration,
        )


@dataclass(frozen=True)
class Admitted:
    """An admitted plugin: its self id, what it may register (None: anything) and why."""

    self_id: str
    provides: frozenset[str] | None
    by: AdmittedBy
    detail: str = ""

    def describe(self) -> str:
        """For logs: ``join token 1a2b..., may provide kv, cache``."""
        if self.provides is None:
            what = "anything"
        else:
            what = ", ".join(sorted(self.provides)) or "nothing"
        by = f"{self.by.value} {self.detail}" if self.detail else self.by.value
        return f"{by}, may provide {what}"


@dataclass
class AdmissionState:
    """What admission learns at run time: plain dicts on one host; replicated maps of the
    shared store on several, so an admission or a revocation made on one holds on all.

    ``allowed``: self id -> types admitted at run time (`Admission.allow`); ``launches``:
    SHA-256 (hex) of a launch secret -> (self id, types); ``revoked``: join token id ->
    when its revocation may be forgotten (the token's expiry, Unix seconds).
    """

    allowed: MutableMapping[str, frozenset[str]] = field(default_factory=dict)
    launches: MutableMapping[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    revoked: MutableMapping[str, float] = field(default_factory=dict)


def _merged(entries: Iterable[AllowEntry]) -> dict[str, frozenset[str]]:
    merged: dict[str, frozenset[str]] = {}
    for entry in entries:
        merged[entry.self_id] = merged.get(entry.self_id, frozenset()) | entry.provides
    return merged


def _refuse(code: Code, message: str, peer: str | None) -> ConnectError:
    log.warning("handshake refused (peer %s): %s", peer or "unknown", message)
    return ConnectError(code, message)


class Admission:
    """Decides each handshake under an `AdmissionPolicy`; ``clock`` is wall time (Unix s)."""

    def __init__(
        self,
        policy: AdmissionPolicy | None = None,
        *,
        clock: Clock = WALL_CLOCK,
        state: AdmissionState | None = None,
    ) -> None:
        self.policy = policy if policy is not None else AdmissionPolicy()
        self.clock = clock
        self.state = state if state is not None else AdmissionState()
        """Run-time admissions, launch secrets and revocations (the host replaces it with
        the shared store's maps when it runs on one)."""
        self._keys = join_tokens.load_keys(self.policy.key_file) if self.policy.key_file else ()
        self._allow = _merged(self.policy.allow)
        self._allow_cert = _merged(self.policy.allow_cert)

    @property
    def _launches(self) -> MutableMapping[str, tuple[str, frozenset[str]]]:
        """The launch secrets expected now (kept under its old name for the tests)."""
        return self.state.launches

    # -- credentials the host hands out --------------------------------------------------
    def issue_join_token(self, self_id: str, provides: Iterable[str], ttl: float) -> str:
        """A join token signed with this host's key (as ``plugin-di join-token`` makes)."""
        if not self._keys:
            raise join_tokens.JoinTokenError("this host has no admission key file")
        return join_tokens.issue(self._keys[0], self_id, provides, ttl=ttl, now=self.clock.now())

    def expect_launch(
        self, secret: str, self_id: str, provides: Iterable[str]
    ) -> Callable[[], None]:
        """Admit the plugin an app is launching by its ``secret``; call the result to forget it.

        The secret admits ``self_id`` to provide ``provides`` until forgotten (the launcher
        forgets it when the process ends), so a plugin that joins again is admitted again.
        """
        entry = AllowEntry.of(self_id, provides, "launched plugin")
        digest = hashlib.sha256(secret.encode()).hexdigest()
        launches = self.state.launches
        launches[digest] = (entry.self_id, entry.provides)

        def forget() -> None:
            launches.pop(digest, None)

        return forget

    # -- decisions made at run time ------------------------------------------------------
    def allow(self, self_id: str, provides: Iterable[str]) -> AllowEntry:
        """Admit ``self_id`` to provide ``provides`` from now on, like an ``--allow`` entry
        (on a shared store: on every host). ValueError when the self id or a type is invalid."""
        entry = AllowEntry.of(self_id, provides, "allow")
        self.state.allowed[entry.self_id] = entry.provides
        log.info("admission: %s may now join, to provide %s", entry.self_id,
                 ", ".join(sorted(entry.provides)) or "nothing")  # fmt: skip
        return entry

    def withdraw(self, self_id: str) -> bool:
        """Undo `allow` for ``self_id`` (plugins already admitted keep their identity until
        it is revoked); True if there was such an admission."""
        found = self.state.allowed.pop(normalize_self_id(self_id), None) is not None
        if found:
            log.info("admission: %s is no longer admitted at run time", self_id)
        return found

    def revoke_join_token(self, token_id: str, until: float) -> None:
        """Refuse the join token ``token_id`` (its ``jti``, as the host logs it) from now on;
        ``until`` is its expiry (Unix seconds), after which the revocation is forgotten."""
        self.state.revoked[token_id] = until
        log.info("admission: join token %s revoked", token_id)

    # -- the decision --------------------------------------------------------------------
    def admit(
        self,
        self_id: str,
        *,
        authorization: str | None = None,
        certificate_name: str | None = None,
        peer: str | None = None,
    ) -> Admitted:
        """Admit the handshake of ``self_id``, or raise the ConnectError that refuses it."""
        self_id = normalize_self_id(self_id)
        if authorization:
            return self._by_credential(self_id, authorization, peer)
        if certificate_name:
            name = certificate_name.strip().lower()
            granted = self._allow_cert.get(name)
            if granted is not None:
                if name != self_id:
                    raise _refuse(
                        Code.PERMISSION_DENIED,
                        f"the client certificate is for {name!r}, not for self_id {self_id!r}",
                        peer,
                    )
                return Admitted(self_id, granted, AdmittedBy.CLIENT_CERTIFICATE, name)
        granted = self._allow.get(self_id)
        added = self.state.allowed.get(self_id)
        if added is not None:
            granted = added if granted is None else granted | added
        if granted is not None:
            return Admitted(self_id, granted, AdmittedBy.ALLOW_LIST)
        if self.policy.open_registration:
            return Admitted(self_id, None, AdmittedBy.OPEN_REGISTRATION)
        unmapped = (
            f" (its client certificate {certificate_name!r} has no --allow-cert entry)"
            if certificate_name
            else ""
        )
        raise _refuse(
            Code.UNAUTHENTICATED,
            f"plugin {self_id!r} is not admitted{unmapped}: {how_to_join(self_id)}",
            peer,
        )

    def _by_credential(self, self_id: str, authorization: str, peer: str | None) -> Admitted:
        if authorization[: len(_BEARER)].lower() != _BEARER:
            raise _refuse(
                Code.UNAUTHENTICATED,
                "the handshake's Authorization header must be 'Bearer <join token>'",
                peer,
            )
        credential = authorization[len(_BEARER) :].strip()
        if join_tokens.looks_like_join_token(credential):
            if not self._keys:
                raise _refuse(
                    Code.UNAUTHENTICATED,
                    "this host accepts no join tokens: start it with an admission key file "
                    "(--admission-key-file)",
                    peer,
                )
            try:
                claims = join_tokens.verify(credential, self._keys, now=self.clock.now())
            except join_tokens.JoinTokenError as exc:
                raise _refuse(Code.UNAUTHENTICATED, f"{exc}: ask the operator for a new one",
                              peer) from None  # fmt: skip
            if claims.token_id in self.state.revoked:
                raise _refuse(
                    Code.UNAUTHENTICATED,
                    f"join token {claims.token_id} was revoked: ask the operator for a new one",
                    peer,
                )
            bound, provides, by = claims.self_id, claims.provides, AdmittedBy.JOIN_TOKEN
            detail = claims.token_id
        else:
            digest = hashlib.sha256(credential.encode("utf-8", "replace")).hexdigest()
            launch = self.state.launches.get(digest)
            if launch is None:
                raise _refuse(
                    Code.UNAUTHENTICATED,
                    "the handshake's credential is neither a valid join token nor the launch "
                    f"secret of a plugin this host expects: {how_to_join(self_id)}",
                    peer,
                )
            (bound, provides), by, detail = launch, AdmittedBy.LAUNCH_SECRET, ""
        if bound != self_id:
            raise _refuse(
                Code.PERMISSION_DENIED,
                f"the {by.value} admits self_id {bound!r}, not {self_id!r}",
                peer,
            )
        return Admitted(self_id, provides, by, detail)
