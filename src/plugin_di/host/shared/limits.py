"""One rate limit across every host: local token buckets kept in step with global ones.

The routing path cannot wait for the store, so each host decides every call from its own
bucket (``TokenBucketLimiter.allow``: about a microsecond) and counts what it admitted.
Every ``sync_interval`` (50 ms by default) it pays those counts into the global bucket of
each key in Redis (one script, one round trip for all keys) and sets its local bucket to
the global level that comes back. Calls admitted on a level up to one interval old may
drive the global bucket below zero (down to -burst); later refills pay that debt, so over
any stretch longer than a few intervals the admitted rate is the global rate.

The tolerance: within one interval every other host can admit from a level that does
not count this host's calls yet, so a burst can exceed the global limit by what the other
hosts admit during one interval, at most (hosts - 1) x (burst + rps x sync_interval); a
key first seen on a host starts from a full local bucket. Sustained rates hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from plugin_di.clock import SYSTEM_CLOCK, Clock
from plugin_di.host.shared.engine import StoreUnavailable
from plugin_di.host.shared.state import SharedState
from plugin_di.rpc.interceptors.ratelimit import Rate, TokenBucketLimiter

log = logging.getLogger(__name__)


class SharedTokenBuckets(TokenBucketLimiter):
    """A `TokenBucketLimiter` whose buckets are one global bucket per key, in the store."""

    def __init__(self, state: SharedState, clock: Clock = SYSTEM_CLOCK, *,
                 sync_interval: float) -> None:  # fmt: skip
        super().__init__(clock)
        self._state = state
        self._clock = clock
        self.sync_interval = sync_interval
        # key -> [calls admitted since the last sync, rps, burst]
        self._spent: dict[str, list[float]] = {}
        self._task: asyncio.Task[None] | None = None
        self.syncs = 0

    def allow(self, key: str, rate: Rate) -> bool:
        if not super().allow(key, rate):
            return False
        spent = self._spent.get(key)
        if spent is None:
            self._spent[key] = [1.0, rate.rps, rate.burst]
        else:
            spent[0] += 1.0
        return True

    async def sync(self) -> None:
        """Pay the counts since the last sync into the global buckets; take their levels."""
        if not self._spent:
            return
        spent, self._spent = self._spent, {}
        items = [(key, s[0], s[1], int(s[2])) for key, s in spent.items()]
        try:
            levels = await self._state.engine.spend(items)
        except StoreUnavailable:
            # Keep deciding locally; the counts are paid once the store is back.
            for key, (count, rps, burst) in spent.items():
                current = self._spent.setdefault(key, [0.0, rps, burst])
                current[0] += count
            raise
        now = self._clock.now()
        for (key, _, _, _), level in zip(items, levels, strict=True):
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            # The calls admitted here while the script ran are not in ``level`` yet.
            pending = self._spent.get(key)
            bucket[0] = level - (pending[0] if pending else 0.0)
            bucket[1] = now
        self.syncs += 1

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval)
            with contextlib.suppress(StoreUnavailable):
                await self.sync()

    def start(self) -> None:
        """Sync every ``sync_interval`` until `stop`."""
        if self._task is None:
            self._task = asyncio.create_task(self._sync_forever(), name="rate-limit-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StoreUnavailable):
            await self.sync()
