"""The Redis engine under the shared state: one client, the scripts, and what they return.

Everything here is one round trip (a pipeline at most) and raises `StoreUnavailable`
when Redis cannot be reached. Reconnecting is redis-py's: the next command opens a
new connection, so hosts reconnect by themselves when the store comes back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from plugin_di.host.shared import scripts
from plugin_di.host.shared.config import StoreConfig

log = logging.getLogger(__name__)

STREAM_MAXLEN = 10_000
"""Events kept in the change stream; a host further behind than this loads a snapshot."""
REAP_LIMIT = 500
_CONNECT_TIMEOUT = 1.0
_COMMAND_TIMEOUT = 5.0


class StoreUnavailable(ConnectionError):
    """The shared store could not be reached (or answered with an error)."""


class GuardFailed(Exception):
    """A write was refused because what it depends on is gone (a plugin whose lease ended)."""


@dataclass(frozen=True)
class Snapshot:
    """Every replicated map at one point of the change stream."""

    seq: int
    stream_id: str
    maps: dict[str, dict[str, str]]


@dataclass(frozen=True)
class Event:
    """One entry of the change stream: its sequence number and its ops."""

    stream_id: str
    seq: int
    ops: list[list[str]]


def _redis_client(url: str) -> Any:
    try:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise StoreUnavailable(
            "a redis:// store needs the Redis client: pip install 'plugin-di[redis]'"
        ) from exc
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=_CONNECT_TIMEOUT,
        socket_timeout=_COMMAND_TIMEOUT,
        # One retry on a fresh connection: a pooled connection that died with a
        # restarted server fails once, then the command goes through.
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )


class RedisEngine:
    """Talks to Redis for the shared state (`plugin_di.host.shared.state.SharedState`)."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.prefix = "{" + config.prefix + "}"
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    @property
    def stream(self) -> str:
        return self.prefix + ":events"

    async def connect(self) -> None:
        """Open the client and check that Redis answers."""
        if self._client is None:
            self._client = _redis_client(self.config.url)
            for name in ("MUTATE", "TOUCH", "REAP", "SNAPSHOT", "SPEND"):
                self._scripts[name] = self._client.register_script(getattr(scripts, name))
        await self._call(self._client.ping())

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, awaitable: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"shared store {self.where}: {exc}") from exc

    @property
    def where(self) -> str:
        """The store's URL without its password (for logs)."""
        url = self.config.url
        return url.split("@", 1)[-1] if "@" in url else url  # never log a password

    # -- writes --------------------------------------------------------------------------
    async def mutate(self, batches: Sequence[str]) -> list[int | BaseException]:
        """Run each JSON batch (see `scripts.MUTATE`) in one pipeline; a result per batch:
        its event's sequence number, -1 (no change), or the exception that refused it."""
        from redis.exceptions import RedisError

        script = self._scripts["MUTATE"]
        args = [self.prefix, STREAM_MAXLEN]
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for batch in batches:
                    await script(keys=[], args=[*args, batch], client=pipe)
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"shared store {self.where}: {exc}") from exc
        out: list[int | BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                out.append(StoreUnavailable(f"shared store refused a write: {result}"))
            elif int(result) == 0:
                out.append(GuardFailed("the plugin this write belongs to is gone"))
            else:
                out.append(int(result))
        return out

    async def touch(self, leases: Sequence[tuple[str, float, float]]) -> list[bool]:
        """Extend live leases: (owner, ttl seconds, cap as Unix seconds or 0)."""
        args: list[Any] = [self.prefix]
        for owner, ttl, cap in leases:
            args += [owner, int(ttl * 1000), int(cap * 1000)]
        result = await self._call(self._scripts["TOUCH"](keys=[], args=args))
        return [bool(int(r)) for r in result]

    async def reap(self) -> int:
        """End every lease and entry whose time has come; how many."""
        script = self._scripts["REAP"]
        return int(await self._call(script(keys=[], args=[self.prefix, STREAM_MAXLEN, REAP_LIMIT])))

    async def spend(self, items: Sequence[tuple[str, float, float, int]]) -> list[float]:
        """Take (key, spent, rps, burst) from the global buckets; each bucket's level."""
        args: list[Any] = [self.prefix]
        for key, spent, rps, burst in items:
            args += [key, repr(float(spent)), repr(float(rps)), burst]
        return [
            float(level) for level in await self._call(self._scripts["SPEND"](keys=[], args=args))
        ]

    # -- reads ---------------------------------------------------------------------------
    async def snapshot(self, maps: Sequence[str]) -> Snapshot:
        """Every map and the stream position, atomically."""
        raw = await self._call(self._scripts["SNAPSHOT"](keys=[], args=[self.prefix, *maps]))
        data = {}
        for name, flat in zip(maps, raw[2:], strict=True):
            data[name] = dict(zip(flat[::2], flat[1::2], strict=True))
        return Snapshot(int(raw[0]), str(raw[1]), data)

    async def events(self, after: str, block_ms: int) -> list[Event]:
        """Events after stream id ``after``, waiting up to ``block_ms`` for the first."""
        reply = await self._call(
            self._client.xread({self.stream: after}, count=1000, block=block_ms)
        )
        out = []
        for _, entries in reply or ():
            for stream_id, fields in entries:
                out.append(Event(stream_id, int(fields["s"]), json.loads(fields["e"])))
        return out

    async def info(self) -> dict[str, Any]:
        """Redis's INFO (persistence and server sections), for diagnostics and tests."""
        return dict(await self._call(self._client.info()))
