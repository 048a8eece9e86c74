"""Where a host keeps its platform state: ``memory://`` (the default) or ``redis://``.

`StoreConfig` is built once from Settings (``PLUGIN_DI_STORE``, ``PLUGIN_DI_LEASE_TTL``,
``PLUGIN_DI_STORE_SYNC_INTERVAL``) or from ``plugin-di host --store URL``. This module
imports no client library: ``memory://`` needs nothing installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from plugin_di.settings import Settings

MEMORY_URL = "memory://"
DEFAULT_LEASE_TTL = 30.0
DEFAULT_SYNC_INTERVAL = 0.05
_SHARED_SCHEMES = ("redis", "rediss", "unix")


class StoreConfigError(ValueError):
    """A store URL or setting that cannot be used; the message says what to write instead."""


def check_store_url(url: str) -> str:
    """``url`` if plugin-di can keep its state there, else StoreConfigError saying why."""
    scheme = urlsplit(url).scheme.lower()
    if url == MEMORY_URL or scheme == "memory":
        return MEMORY_URL
    if scheme == "etcd":
        raise StoreConfigError(
            f"store {url!r}: etcd is not supported; plugin-di keeps shared state on Redis "
            "(redis://HOST:PORT/DB; docs/deploy.md explains the choice)"
        )
    if scheme not in _SHARED_SCHEMES:
        raise StoreConfigError(
            f"store {url!r}: expected memory:// (one host, the default), "
            "redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix:///PATH?db=N"
        )
    if scheme != "unix" and not urlsplit(url).hostname:
        raise StoreConfigError(f"store {url!r}: name the Redis host, e.g. redis://HOST:6379/0")
    return url


@dataclass(frozen=True)
class StoreConfig:
    """The platform state's engine and its timings.

    ``url``: ``memory://`` or a Redis URL; ``lease_ttl``: seconds a plugin stays registered
    after its last heartbeat (shared stores only); ``sync_interval``: seconds between a host's
    pushes of its rate-limit counts to the global buckets; ``prefix``: the key prefix (one
    Redis database can hold several platforms under different prefixes).
    """

    url: str = MEMORY_URL
    lease_ttl: float = DEFAULT_LEASE_TTL
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    prefix: str = "plugin-di"

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_store_url(self.url))
        if self.lease_ttl <= 0 or self.sync_interval <= 0:
            raise StoreConfigError(
                f"lease_ttl and sync_interval must be positive, got {self.lease_ttl:g} "
                f"and {self.sync_interval:g}"
            )
        if not self.prefix or any(c in self.prefix for c in "{}|"):
            raise StoreConfigError(f"store prefix {self.prefix!r}: use letters, digits and -")

    @property
    def shared(self) -> bool:
        """True when the state lives in an engine that several hosts share."""
        return self.url != MEMORY_URL

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> StoreConfig:
        """The store of ``PLUGIN_DI_STORE`` (or ``url``, e.g. from ``--store``)."""
        return cls(
            url=url or settings.store,
            lease_ttl=settings.lease_ttl,
            sync_interval=settings.store_sync_interval,
        )
