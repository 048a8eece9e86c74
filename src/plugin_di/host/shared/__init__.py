"""Shared platform state: several hosts on one Redis (``plugin-di host --store redis://...``).

`SharedPlatform` builds, for one host, every part whose state the hosts share: the
registry's store, runtime identities, health, capability grants, admissions and
revocations, and the global rate-limit buckets, all replicated from one `SharedState`
(docs/deploy.md). The default ``memory://`` store never imports this package.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from plugin_di.clock import SYSTEM_CLOCK, WALL_CLOCK, Clock
from plugin_di.host.admission import AdmissionState
from plugin_di.host.broker import Grant
from plugin_di.host.depgraph import DependencyGraph, Node
from plugin_di.host.router import ServiceRouter
from plugin_di.host.shared import codecs
from plugin_di.host.shared.config import StoreConfig
from plugin_di.host.shared.engine import GuardFailed, StoreUnavailable
from plugin_di.host.shared.identities import SharedTokenStore
from plugin_di.host.shared.keeper import LeaseKeeper, decode_host, encode_host, host_owner
from plugin_di.host.shared.limits import SharedTokenBuckets
from plugin_di.host.shared.registry_store import SharedRegistryStore
from plugin_di.host.shared.state import ReplicatedMap, SharedState
from plugin_di.host.store import PluginRecord
from plugin_di.host.tracker import HealthReport

__all__ = ["GuardFailed", "SharedPlatform", "StoreConfig", "StoreUnavailable"]


def _by_key(key: str, value: object) -> str:
    return key


def _encode_grant(grant: Grant) -> str:
    return json.dumps([grant.grant_id, grant.capability_type, grant.token, grant.runtime_id,
                       grant.expires_at])  # fmt: skip


def _decode_grant(text: str) -> Grant:
    grant_id, capability_type, token, runtime_id, expires_at = json.loads(text)
    return Grant(grant_id, capability_type, token, runtime_id, float(expires_at))


def _encode_launch(entry: tuple[str, frozenset[str]]) -> str:
    return json.dumps([entry[0], sorted(entry[1])])


def _decode_launch(text: str) -> tuple[str, frozenset[str]]:
    self_id, provides = json.loads(text)
    return str(self_id), frozenset(provides)


class SharedPlatform:
    """One host's parts of a platform whose state lives in Redis."""

    def __init__(
        self,
        config: StoreConfig,
        *,
        runtime_token_ttl: float,
        clock: Clock = WALL_CLOCK,
        monotonic: Clock = SYSTEM_CLOCK,
        managed: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.config = config
        self.host_id = "host-" + secrets.token_hex(4)
        self.clock = clock
        state = self.state = SharedState(config)
        self.registry_store = SharedRegistryStore(state)
        self.tokens = SharedTokenStore(
            state,
            runtime_token_ttl,
            clock,
            lease_ttl=config.lease_ttl,
            host_id=self.host_id,
            monotonic=monotonic,
        )
        self.health: ReplicatedMap[HealthReport] = state.map(
            "health", codecs.encode_health, codecs.decode_health, owner=_by_key
        )
        self.grants: ReplicatedMap[Grant] = state.map(
            "grants",
            _encode_grant,
            _decode_grant,
            owner=lambda key, grant: grant.runtime_id,
            ttl=lambda grant: max(0.001, grant.expires_at - clock.now()),
        )
        owner = host_owner(self.host_id)
        self.admission = AdmissionState(
            allowed=state.map("admitted", codecs.encode_types, codecs.decode_types),
            launches=state.map(
                "launches", _encode_launch, _decode_launch, owner=lambda key, value: owner
            ),
            revoked=state.map(
                "revoked",
                json.dumps,
                json.loads,
                ttl=lambda until: max(0.001, until - clock.now()),
            ),
        )
        self.hosts = state.map("hosts", encode_host, decode_host, owner=lambda k, v: owner)
        self.limiter = SharedTokenBuckets(state, monotonic, sync_interval=config.sync_interval)
        self.keeper = LeaseKeeper(
            state,
            self.tokens,
            self.registry_store,
            self.hosts,
            self.host_id,
            managed=managed,
        )

    def follow(self, router: ServiceRouter, graph: DependencyGraph) -> None:
        """Keep a host's own views in step with plugins other hosts admitted and with the
        ends of leases: a plugin gone from the store leaves the router and the graph."""

        def plugin_changed(runtime_id: str, old: PluginRecord | None,
                           new: PluginRecord | None) -> None:  # fmt: skip
            if new is None:
                router.remove(runtime_id)
                graph.remove(runtime_id)
            else:
                graph.add(Node(new.runtime_id, new.self_id, new.provides, new.requires))

        self.registry_store.plugins_map.on_change(plugin_changed)

    async def start(self, url: str) -> None:
        """Connect and load the replica, enter this host, and start the background work."""
        await self.state.start()
        self.keeper.join(url, time.time())
        await self.state.flush()
        self.keeper.start()
        self.limiter.start()

    async def stop(self) -> None:
        """Leave (this host's plugins stay: they heartbeat through the other hosts, or to
        this one when it is back), send what is queued, disconnect."""
        await self.keeper.stop()
        await self.limiter.stop()
        self.keeper.leave()
        await self.state.stop()

    async def commit(self) -> None:
        """Wait until the store took every write made so far."""
        await self.state.flush()

    def describe(self) -> dict[str, Any]:
        """For logs and tests: the host id, the store, and what the replica holds."""
        return {
            "host_id": self.host_id,
            "store": self.state.engine.where,
            "maps": {name: len(m) for name, m in self.state.maps.items()},
        }
