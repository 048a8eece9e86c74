"""Joining a serving plugin to the host platform: `HostMembership` and `join_host`.

A `HostMembership` is the ``on_ready`` hook `plugin_di.plugin.server.serve_async` calls
once the plugin serves: it self-registers when ``PLUGIN_DI_HOST_URL`` is set, else it
waits for the host that launched it to hand it an identity (platform-managed), and
mirrors the session's health into the plugin's own health service. ``leave()`` after
serving unregisters every service. ``serve_on_host`` (in `plugin_di.plugin.server`)
serves and joins in one call.

Plugin layer: imports only rpc and generated code (no host, networkx or pydantic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from plugin_di.plugin import env
from plugin_di.plugin.definition import PluginsLike, as_plugin_set
from plugin_di.plugin.host_session import (
    HostSession,
    OnSession,
    follow_identity,
    self_register,
)
from plugin_di.plugin.identity import IdentityStore

__all__ = ["LEAVE_TIMEOUT", "HostMembership", "join_host"]

log = logging.getLogger(__name__)

LEAVE_TIMEOUT = 2.0
"""Seconds a plugin leaving the host waits for each session to unregister."""


class _Served(Protocol):
    identity: IdentityStore
    health: Any


class HostMembership:
    """An ``on_ready`` hook for ``serve_async`` that joins the host; ``leave()`` after serving.

    With ``PLUGIN_DI_HOST_URL`` set the plugin self-registers there, admitted by
    ``PLUGIN_DI_JOIN_TOKEN`` when set (docs/security.md#admission); otherwise it
    waits for a host to hand it an identity (platform-managed). Either way its
    services are registered, its dependencies watched, and its health (also the
    plugin's own health services) follows what it reports. A failure to join is
    logged; the plugin keeps serving.
    """

    def __init__(
        self,
        plugins: PluginsLike,
        *,
        environ: Mapping[str, str] | None = None,
        on_session: OnSession | None = None,
    ) -> None:
        self.plugins = as_plugin_set(plugins)
        environ = os.environ if environ is None else environ
        self.host_url = environ.get(env.HOST_URL, "")
        self.join_token = environ.get(env.JOIN_TOKEN, "")
        self.base_url = environ.get(env.BASE_URL, "")
        beat = environ.get(env.HEARTBEAT_INTERVAL, "")
        self.heartbeat = float(beat) if beat else None
        self.sessions: list[HostSession] = []
        self._on_session = on_session
        self._task: asyncio.Task[HostSession] | None = None

    def __call__(self, server: _Served, line: Any) -> None:
        from plugin_di.plugin.health import HealthState

        def mirror(state: int, reason: str, missing: Sequence[str]) -> None:
            server.health.report(HealthState(state), reason, missing)

        if self.host_url:
            coro = self_register(
                self.host_url,
                self.plugins,
                base_url=self.base_url or line.url,
                on_report=mirror,
                on_session=self._joined,
                join_token=self.join_token,
                heartbeat=self.heartbeat,
            )
        else:
            coro = follow_identity(
                server.identity, self.plugins, on_report=mirror, on_session=self._joined
            )
        self._task = asyncio.get_running_loop().create_task(coro)
        self._task.add_done_callback(self._done)

    def _joined(self, session: HostSession) -> None:
        self.sessions.append(session)
        if self._on_session is not None:
            self._on_session(session)

    def _done(self, task: asyncio.Task[HostSession]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            where = self.host_url or "the launching host"
            log.error(
                "joining the host at %s failed: %s; serving on without the host platform "
                "(check %s, %s and that the host is running)",
                where,
                error,
                env.HOST_URL,
                env.JOIN_TOKEN,
            )
            return
        client = task.result().client
        runtime_id = client.identity.runtime_id if client.identity else ""
        log.info("joined the host at %s as %s", client.host_url, runtime_id)

    async def leave(self) -> None:
        """Stop joining, unregister every service (dependents are told), close the client."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for session in self.sessions:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(LEAVE_TIMEOUT):
                    await session.stop()
            await session.client.close()
        self.sessions.clear()


def join_host(
    plugins: PluginsLike,
    *,
    environ: Mapping[str, str] | None = None,
    on_session: OnSession | None = None,
) -> HostMembership:
    """A `HostMembership`: pass it as ``on_ready`` to ``serve_async``, ``leave()`` after.

    ``on_session`` receives the plugin's `HostSession` as soon as it exists (before
    its services are registered), so the plugin can use each dependency once found.
    """
    return HostMembership(plugins, environ=environ, on_session=on_session)
