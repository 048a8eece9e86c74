"""The shared state a host replicates: maps kept current by the store's change stream.

Reads never leave the process: every replicated map is a dict in the host's memory, so
credential checks, registry lookups and health on the routing path cost what they cost
with the in-memory store. A write changes the local map at once (so the writer reads
what it wrote) and is queued for the engine; `SharedState.flush` waits until the engine
took every queued write, and raises if it could not. The engine's change stream then
brings each change to every host, in order, exactly once (a host that missed events, or
reconnects, loads a snapshot instead); listeners of a map hear of the changes that come
from the stream, that is, from other hosts, the lease reaper, and resyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

from plugin_di.host.shared.config import StoreConfig
from plugin_di.host.shared.engine import Event, RedisEngine, StoreUnavailable

log = logging.getLogger(__name__)

V = TypeVar("V")
Listener = Callable[[str, "V | None", "V | None"], None]
"""``listener(key, old, new)``; ``new`` is None when the key went away."""

_FEED_BLOCK_MS = 500
_BACKOFF_MIN, _BACKOFF_MAX = 0.05, 1.0


class ReplicatedMap(MutableMapping[str, V], Generic[V]):
    """A dict replicated through the shared store (values encoded as text).

    ``owner(key, value)`` names the runtime id (or host) whose lease the entry lives and
    dies with; ``ttl`` gives each entry its own expiry (seconds, server clock).
    """

    def __init__(
        self,
        state: SharedState,
        name: str,
        encode: Callable[[V], str],
        decode: Callable[[str], V],
        owner: Callable[[str, V], str] | None = None,
        ttl: Callable[[V], float] | None = None,
    ) -> None:
        self.name = name
        self._state = state
        self._encode = encode
        self._decode = decode
        self._owner = owner
        self._ttl = ttl
        self._data: dict[str, V] = {}
        self._listeners: list[Listener[V]] = []
        self.get = self._data.get  # type: ignore[method-assign]  # the hot path

    # -- Mapping -------------------------------------------------------------------------
    def __getitem__(self, key: str) -> V:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def __setitem__(self, key: str, value: V) -> None:
        self.put(key, value)

    def __delitem__(self, key: str) -> None:
        if key not in self._data:
            raise KeyError(key)
        self.delete(key)

    # -- writes --------------------------------------------------------------------------
    def put(self, key: str, value: V, *, guard: tuple[str, str] | None = None,
            extra: list[list[Any]] | None = None) -> None:  # fmt: skip
        """Set ``key`` here and in the store (``guard``: only if that map/key exists there;
        ``extra``: more ops in the same atomic step)."""
        self._data[key] = value
        owner = self._owner(key, value) if self._owner else ""
        ttl = int(self._ttl(value) * 1000) if self._ttl else 0
        self._state.submit([["p", self.name, key, self._encode(value), owner, ttl], *(extra or ())],
                           guard)  # fmt: skip

    def delete(self, key: str) -> V | None:
        """Remove ``key`` here and in the store; the value it had here, if any."""
        old = self._data.pop(key, None)
        owner = self._owner(key, old) if self._owner and old is not None else ""
        self._state.submit([["d", self.name, key, "", owner, 0]])
        return old

    # -- changes from the store ----------------------------------------------------------
    def on_change(self, listener: Listener[V]) -> None:
        """Call ``listener(key, old, new)`` for every change that comes from the store."""
        self._listeners.append(listener)

    def apply(self, key: str, raw: str | None) -> None:
        """Apply one change from the store (None: deleted)."""
        old = self._data.get(key)
        if raw is None:
            if key not in self._data:
                return
            del self._data[key]
            new = None
        else:
            try:
                new = self._decode(raw)
            except (ValueError, KeyError, TypeError):
                log.warning("shared store: undecodable %s entry %r ignored", self.name, key)
                return
            if old == new:
                return
            self._data[key] = new
        for listener in list(self._listeners):
            listener(key, old, new)

    def replace_all(self, raw: dict[str, str]) -> None:
        """Make the map equal to a snapshot, telling listeners of every difference."""
        for key in [k for k in self._data if k not in raw]:
            self.apply(key, None)
        for key, value in raw.items():
            self.apply(key, value)


class SharedState:
    """A host's replica of the shared store, its write queue and its change feed."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.engine = RedisEngine(config)
        self.maps: dict[str, ReplicatedMap[Any]] = {}
        self._queue: list[tuple[str, asyncio.Future[int] | None]] = []
        self._pending: set[asyncio.Future[int]] = set()
        self._touches: dict[str, tuple[float, float]] = {}
        self._wake: asyncio.Event | None = None
        self._applied = 0
        self._stream_id = "0-0"
        self._resync = False
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = False
        """Whether the last exchange with the store worked."""
        self.resyncs = 0
        """Snapshots loaded so far (the first at start, then after gaps and reconnects)."""

    def map(
        self,
        name: str,
        encode: Callable[[V], str] = json.dumps,
        decode: Callable[[str], V] = json.loads,
        *,
        owner: Callable[[str, V], str] | None = None,
        ttl: Callable[[V], float] | None = None,
    ) -> ReplicatedMap[V]:
        """The replicated map ``name`` (made on first use; make every map before `start`)."""
        existing = self.maps.get(name)
        if existing is None:
            existing = self.maps[name] = ReplicatedMap(self, name, encode, decode, owner, ttl)
        return existing

    # -- writing -------------------------------------------------------------------------
    def submit(self, ops: list[list[Any]], guard: tuple[str, str] | None = None) -> None:
        """Queue one atomic batch of ops for the store (`flush` waits for it)."""
        batch: dict[str, Any] = {"o": ops}
        if guard is not None:
            batch["g"] = list(guard)
        future: asyncio.Future[int] | None = None
        with contextlib.suppress(RuntimeError):  # no loop yet: written once the host starts
            future = asyncio.get_running_loop().create_future()
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
        self._queue.append((json.dumps(batch, separators=(",", ":")), future))
        if self._wake is not None:
            self._wake.set()

    def lease(self, owner: str, ttl: float, cap: float = 0.0) -> list[Any]:
        """The op that starts (or renews) ``owner``'s lease: ``ttl`` seconds, never past
        ``cap`` (Unix seconds; 0: no cap). Put it in a batch with the entries it keeps."""
        return ["l", "", owner, str(int(cap * 1000)), "", int(ttl * 1000)]

    def touch(self, owner: str, ttl: float, cap: float = 0.0) -> None:
        """Extend ``owner``'s lease if it is still alive (sent with the next writes)."""
        self._touches[owner] = (ttl, cap)
        if self._wake is not None:
            self._wake.set()

    @property
    def pending(self) -> bool:
        """Whether writes are queued or in flight."""
        return bool(self._queue or self._pending)

    async def flush(self) -> None:
        """Wait until the store took every write queued so far; raise `StoreUnavailable`
        or `GuardFailed` for the first it refused."""
        waiting = list(self._pending)
        if not waiting:
            return
        results = await asyncio.gather(*waiting, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _write_forever(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            touches, self._touches = self._touches, {}
            try:
                if batch:
                    results = await self.engine.mutate([text for text, _ in batch])
                    for (_, future), result in zip(batch, results, strict=True):
                        if isinstance(result, BaseException):
                            self._resync = True  # undo what was applied here
                            if future is not None and not future.done():
                                future.set_exception(result)
                        elif future is not None and not future.done():
                            future.set_result(result)
                if touches:
                    await self.engine.touch([(o, t, c) for o, (t, c) in touches.items()])
                self.connected = True
            except Exception as exc:  # the writer must outlive any failure
                if not isinstance(exc, StoreUnavailable):
                    log.exception("shared store: a write failed unexpectedly")
                    exc = StoreUnavailable(f"shared store write failed: {type(exc).__name__}")
                self.connected = False
                self._resync = True
                for _, future in batch:
                    if future is not None and not future.done():
                        future.set_exception(exc)
            finally:
                for _, future in batch:  # the futures nobody awaits must not warn
                    if future is not None and future.done() and not future.cancelled():
                        future.exception()

    # -- the change feed -----------------------------------------------------------------
    async def resync(self) -> None:
        """Load a snapshot of every map and continue the feed from there."""
        snapshot = await self.engine.snapshot(list(self.maps))
        for name, replica in self.maps.items():
            replica.replace_all(snapshot.maps.get(name, {}))
        self._applied, self._stream_id = snapshot.seq, snapshot.stream_id
        self._resync = False
        self.resyncs += 1

    def _apply(self, events: list[Event]) -> None:
        for event in events:
            self._stream_id = event.stream_id
            if event.seq <= self._applied:
                continue  # already in the snapshot
            if event.seq != self._applied + 1:
                log.warning("shared store: events %d..%d missing; loading a snapshot",
                            self._applied + 1, event.seq - 1)  # fmt: skip
                self._resync = True
                return
            self._applied = event.seq
            for op in event.ops:
                replica = self.maps.get(op[1])
                if replica is not None:
                    replica.apply(op[2], op[3] if op[0] == "p" else None)

    async def _follow_forever(self) -> None:
        delay = _BACKOFF_MIN
        down = False
        while True:
            try:
                if self._resync:
                    if self._pending:  # let our own writes land first
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(self.flush(), 2.0)
                    await self.resync()
                self._apply(await self.engine.events(self._stream_id, _FEED_BLOCK_MS))
                if down:
                    log.info("shared store %s reachable again; replica reloaded",
                             self.engine.where)  # fmt: skip
                down = False
                self.connected = True
                delay = _BACKOFF_MIN
            except Exception as exc:  # the feed must outlive any failure
                if not isinstance(exc, StoreUnavailable):
                    log.exception("shared store: following the change stream failed")
                elif not down:
                    log.warning("%s; retrying with backoff", exc)
                down = True
                self.connected = False
                self._resync = True
                await asyncio.sleep(delay)
                delay = min(_BACKOFF_MAX, delay * 2)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, load the snapshot, and follow the change stream; writes queued before
        start are sent now."""
        await self.engine.connect()
        await self.resync()
        self.connected = True
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="shared-store-writer"),
            asyncio.create_task(self._follow_forever(), name="shared-store-feed"),
        ]
        if self._queue or self._touches:
            self._wake.set()

    async def stop(self, grace: float = 2.0) -> None:
        """Send what is queued (within ``grace`` seconds), stop following, disconnect."""
        if self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.engine.close()
