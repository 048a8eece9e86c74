"""Staying joined: heartbeats, failing over to another host, joining again.

A `HostSession` hands its upkeep to a `Keepalive` once it has registered:

- **heartbeat**: every third of the lease a host on a shared store announced (else every
  `DEFAULT_HEARTBEAT`), the plugin reports its health again; that keeps its lease, and
  tells the plugin early when the host is gone;
- **failover**: when the host cannot be reached, the plugin moves to the next URL of
  ``PLUGIN_DI_HOST_URL`` (a comma-separated list) with the same identity, which every
  host of a shared store honours;
- **rejoin**: when a host answers UNAUTHENTICATED (the identity ended: a lease that ran
  out, or a host on the in-memory store that restarted), the plugin handshakes again and
  registers anew; its old registrations went with the old identity, so none is doubled.

Each retry waits with exponential backoff and full jitter (0.1 s doubling to 5 s).

Plugin layer: imports only rpc and generated code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.plugin.host_client import HostClient, HostClientError

if TYPE_CHECKING:
    from plugin_di.plugin.host_session import HostSession

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT = 10.0
"""Seconds between heartbeats when the host announced no lease (in-memory store)."""
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0

Rejoin = Callable[[HostClient], Awaitable[None]]
"""Handshake ``client`` with its host again (the session registers afterwards)."""

_GONE = (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.UNKNOWN, Code.INTERNAL,
         Code.RESOURCE_EXHAUSTED, Code.CANCELED)  # fmt: skip


class Backoff:
    """Exponential backoff with full jitter."""

    def __init__(self, low: float = BACKOFF_MIN, high: float = BACKOFF_MAX) -> None:
        self.low, self.high = low, high
        self._next = low

    def reset(self) -> None:
        self._next = self.low

    async def wait(self) -> None:
        delay = random.uniform(0, self._next)
        self._next = min(self.high, self._next * 2)
        await asyncio.sleep(delay)


def split_urls(host_url: str | Sequence[str]) -> list[str]:
    """The host URLs of ``PLUGIN_DI_HOST_URL`` (comma-separated) or of a list."""
    parts = host_url.split(",") if isinstance(host_url, str) else list(host_url)
    return [u.strip() for u in parts if u.strip()]


class Keepalive:
    """Heartbeats, failover and rejoin for one session (started by the session)."""

    def __init__(self, session: HostSession, *, urls: Sequence[str] = (),
                 rejoin: Rejoin | None = None, interval: float | None = None) -> None:  # fmt: skip
        self.session = session
        self.urls = list(urls) or [session.client.host_url]
        self.rejoin = rejoin
        self._interval = interval
        self._alarm = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rejoined = 0
        """How many times the session joined again (a new identity)."""
        self.failovers = 0
        """How many times the session moved to another host URL."""

    @property
    def interval(self) -> float:
        if self._interval is not None:
            return self._interval
        lease = self.session.client.lease_ttl
        return lease / 3 if lease else DEFAULT_HEARTBEAT

    def alarm(self) -> None:
        """Something failed (a watch ended): check the host now rather than at the next beat."""
        self._alarm.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="host-keepalive")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = Backoff()
        healthy = True
        while True:
            if healthy:
                try:
                    async with asyncio.timeout(self.interval):
                        await self._alarm.wait()
                except TimeoutError:
                    pass
            else:
                await backoff.wait()
            self._alarm.clear()
            try:
                await self.session.heartbeat()
                healthy = True
                backoff.reset()
                continue
            except ConnectError as error:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # stop() cancelled the heartbeat: connectrpc turned the cancellation
                    # into ConnectError(CANCELED); retrying would outlive the session.
                    raise asyncio.CancelledError from error
                code, message = error.code, error.message
            except (HostClientError, OSError) as error:
                code, message = Code.UNAVAILABLE, str(error)
            healthy = False
            if code in (Code.UNAUTHENTICATED, Code.PERMISSION_DENIED) and self.rejoin:
                log.warning("host %s no longer knows this plugin (%s); joining again",
                            self.session.client.host_url, message)  # fmt: skip
                await self._join_again(backoff)
                healthy = True
            elif code in _GONE:
                await self._fail_over(message)

    async def _fail_over(self, why: str) -> None:
        current = self.session.client.host_url
        if len(self.urls) < 2:
            log.warning("host %s unreachable (%s); retrying with backoff", current, why)
            return
        index = self.urls.index(current) if current in self.urls else -1
        target = self.urls[(index + 1) % len(self.urls)]
        log.warning("host %s unreachable (%s); moving to %s", current, why, target)
        await self.session.use_host(target)
        self.failovers += 1

    async def _join_again(self, backoff: Backoff) -> None:
        assert self.rejoin is not None
        while True:
            try:
                await self.rejoin(self.session.client)
                await self.session.register_all()
                self.rejoined += 1
                identity = self.session.client.identity
                log.info("joined the host at %s again as %s", self.session.client.host_url,
                         identity.runtime_id if identity else "?")  # fmt: skip
                backoff.reset()
                return
            except ConnectError as error:
                if error.code in (Code.UNAUTHENTICATED, Code.PERMISSION_DENIED,
                                  Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION):  # fmt: skip
                    log.error("joining %s again was refused: %s", self.session.client.host_url,
                              error.message)  # fmt: skip
                elif error.code in _GONE:
                    await self._fail_over(error.message)
            except (HostClientError, OSError) as error:
                await self._fail_over(str(error))
            await backoff.wait()
