"""Leases: who keeps a plugin registered, and the reaper that ends what nobody keeps.

A plugin's identity, record, grant, health and registrations live while its lease does
(``PLUGIN_DI_LEASE_TTL``, 30 s by default). The lease is extended by:

- the plugin's own calls to any host (every validated call; plugin-di plugins send a
  heartbeat every third of the lease, which the handshake announces);
- the host that manages it (`Platform.add_plugin`), for as long as it holds the link;
- for a plugin that cannot heartbeat (a connect-plugin-go peer: its handshake does not
  say ``plugin-di.heartbeat``), the host that admitted it, for as long as the plugin
  answers a health check at its base URL; when that host is gone, the longest-lived host
  adopts it.

Every host runs the reaper once per keep interval (a quarter of the lease, at most 1 s):
one script ends every lease and entry whose time (by Redis's clock) has passed, and the
change stream tells every host. Hosts have leases too: a host's launch secrets end with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from plugin_di.host.shared.engine import StoreUnavailable
from plugin_di.host.shared.identities import SharedTokenStore
from plugin_di.host.shared.registry_store import SharedRegistryStore
from plugin_di.host.shared.state import ReplicatedMap, SharedState
from plugin_di.host.store import PluginRecord
from plugin_di.plugin.env import HEARTBEAT_KEY

log = logging.getLogger(__name__)

_PROBE_PATH = "/connectplugin.health.v1.HealthService/Check"
_PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class HostEntry:
    """A live host: its id, where it serves, and when it started (Unix seconds)."""

    host_id: str
    url: str
    started_at: float


def encode_host(entry: HostEntry) -> str:
    return json.dumps([entry.host_id, entry.url, entry.started_at])


def decode_host(text: str) -> HostEntry:
    host_id, url, started_at = json.loads(text)
    return HostEntry(host_id, url, float(started_at))


def host_owner(host_id: str) -> str:
    """The lease owner name of a host."""
    return "h:" + host_id


class LeaseKeeper:
    """Extends the leases this host answers for, and reaps the ended ones."""

    def __init__(
        self,
        state: SharedState,
        tokens: SharedTokenStore,
        registry: SharedRegistryStore,
        hosts: ReplicatedMap[HostEntry],
        host_id: str,
        *,
        managed: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self._state = state
        self._tokens = tokens
        self._registry = registry
        self.hosts = hosts
        self.host_id = host_id
        self._managed = managed
        self.lease_ttl = tokens.lease_ttl
        self.interval = min(1.0, self.lease_ttl / 4)
        self._entry: HostEntry | None = None
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    def join(self, url: str, started_at: float) -> None:
        """Enter this host in the store, with its own lease."""
        self._entry = HostEntry(self.host_id, url, started_at)
        lease = self._state.lease(host_owner(self.host_id), self.lease_ttl)
        self.hosts.put(self.host_id, self._entry, extra=[lease])

    def leave(self) -> None:
        """Take this host out of the store (a graceful stop): its launch secrets go too."""
        self.hosts.delete(self.host_id)

    async def keep_once(self) -> None:
        """One round: extend this host's leases, probe the peers it keeps, reap."""
        if self._entry is not None and self.host_id not in self.hosts:
            self.join(self._entry.url, self._entry.started_at)  # reaped while cut off
        else:
            self._state.touch(host_owner(self.host_id), self.lease_ttl)
        for runtime_id in self._managed():
            self._tokens.keep_alive(runtime_id)
        await self._probe_peers()
        await self._state.engine.reap()

    def _base_url(self, record: PluginRecord) -> str:
        """Where a plugin answers health checks: its declared base URL, else the one its
        registrations name (connect-plugin-go peers declare it there)."""
        if record.base_url:
            return record.base_url
        for registration in self._registry.registrations_of(record.runtime_id):
            url = registration.metadata.get("base_url", "")
            if url:
                return url
        return ""

    def _kept_here(self, record: PluginRecord) -> bool:
        if record.metadata.get(HEARTBEAT_KEY) or not self._base_url(record).startswith("http"):
            return False
        owner = self._tokens.host_of(record.runtime_id)
        if owner == self.host_id:
            return True
        if owner in self.hosts:
            return False
        eldest = min(self.hosts.values(), key=lambda h: (h.started_at, h.host_id), default=None)
        return eldest is not None and eldest.host_id == self.host_id

    async def _probe_peers(self) -> None:
        kept = [r for r in self._registry.plugins() if self._kept_here(r)]
        if not kept:
            return
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=_PROBE_TIMEOUT)
        answers = await asyncio.gather(*(self._answers(self._base_url(r)) for r in kept))
        for record, alive in zip(kept, answers, strict=True):
            if alive:
                self._tokens.keep_alive(record.runtime_id)

    async def _answers(self, base_url: str) -> bool:
        assert self._http is not None
        try:
            response = await self._http.post(
                base_url.rstrip("/") + _PROBE_PATH,
                content=b"{}",
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _keep_forever(self) -> None:
        while True:
            try:
                await self.keep_once()
            except StoreUnavailable:
                pass  # the feed logs the outage; leases are extended once it is over
            except Exception:
                log.exception("lease keeper round failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._keep_forever(), name="lease-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
