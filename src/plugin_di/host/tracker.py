"""Health tracking: the three-state model plugins report, and who is told when it changes.

HEALTHY and DEGRADED providers receive traffic; UNHEALTHY ones do not. A plugin
that never reported is routable (connect-plugin-go's backward-compatible rule).
Waiting for a state is event-driven (no polling sleep).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.gen.connectplugin.v1 import lifecycle_pb2
from plugin_di.host.auth import TokenValidator, check_credentials
from plugin_di.rpc.telemetry import current as current_telemetry

HEALTHY = lifecycle_pb2.HEALTH_STATE_HEALTHY
DEGRADED = lifecycle_pb2.HEALTH_STATE_DEGRADED
UNHEALTHY = lifecycle_pb2.HEALTH_STATE_UNHEALTHY
UNSPECIFIED = lifecycle_pb2.HEALTH_STATE_UNSPECIFIED

STATE_NAMES: dict[int, str] = {UNSPECIFIED: "UNSPECIFIED", HEALTHY: "HEALTHY", DEGRADED: "DEGRADED",
               UNHEALTHY: "UNHEALTHY"}  # fmt: skip


@dataclass(frozen=True)
class HealthReport:
    """What a plugin last said about itself."""

    state: int
    reason: str = ""
    unavailable_dependencies: tuple[str, ...] = field(default=())

    @property
    def routable(self) -> bool:
        """Whether traffic may go to the plugin (not UNHEALTHY)."""
        return self.state != UNHEALTHY

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.state, str(self.state))


HealthListener = Callable[[str, "HealthReport | None", "HealthReport | None"], None]
"""Called as ``listener(runtime_id, old, new)``; ``new`` is None when the plugin is forgotten."""


class HealthTracker:
    """Per-runtime-id health reports, listeners, and event-driven waits."""

    def __init__(self, reports: MutableMapping[str, HealthReport] | None = None) -> None:
        """``reports`` holds the last report per runtime id (a dict by default; the shared
        store's replicated map when hosts share their state)."""
        self._reports: MutableMapping[str, HealthReport] = reports if reports is not None else {}
        self._listeners: list[HealthListener] = []
        self._waiters: dict[str, list[tuple[tuple[int, ...], asyncio.Future[HealthReport]]]] = {}

    def add_listener(self, listener: HealthListener) -> None:
        """Call ``listener`` on every change."""
        self._listeners.append(listener)

    def report(
        self, runtime_id: str, state: int, reason: str = "", unavailable: Sequence[str] = ()
    ) -> HealthReport:
        """Record a report and tell listeners if anything changed."""
        if state not in STATE_NAMES or state == UNSPECIFIED:
            raise ValueError(f"health state must be HEALTHY, DEGRADED or UNHEALTHY, got {state}")
        new = HealthReport(state, reason, tuple(unavailable))
        old = self._reports.get(runtime_id)
        self._reports[runtime_id] = new
        if old != new:
            self._notify(runtime_id, old, new)
        return new

    def get(self, runtime_id: str) -> HealthReport | None:
        """The last report of ``runtime_id``, or None."""
        return self._reports.get(runtime_id)

    def routable(self, runtime_id: str) -> bool:
        """True unless the plugin last reported UNHEALTHY."""
        report = self._reports.get(runtime_id)
        return report is None or report.routable

    def forget(self, runtime_id: str) -> None:
        """Drop a plugin's state (it was removed)."""
        old = self._reports.pop(runtime_id, None)
        if old is not None:
            self._notify(runtime_id, old, None)

    async def wait_for(self, runtime_id: str, states: Sequence[int] = (HEALTHY,)) -> HealthReport:
        """Wait until ``runtime_id`` reports one of ``states`` (bound it with asyncio.timeout)."""
        report = self._reports.get(runtime_id)
        if report is not None and report.state in states:
            return report
        future: asyncio.Future[HealthReport] = asyncio.get_running_loop().create_future()
        waiter = (tuple(states), future)
        self._waiters.setdefault(runtime_id, []).append(waiter)
        try:
            return await future
        finally:
            waiters = self._waiters.get(runtime_id, [])
            if waiter in waiters:
                waiters.remove(waiter)

    def changed(self, runtime_id: str, old: HealthReport | None, new: HealthReport | None) -> None:
        """Tell listeners and waiters of a change made elsewhere (another host's report)."""
        self._notify(runtime_id, old, new)

    def _notify(self, runtime_id: str, old: HealthReport | None, new: HealthReport | None) -> None:
        telemetry = current_telemetry()
        if telemetry is not None:
            telemetry.health_changed(runtime_id, new.state_name if new is not None else None)
        for listener in list(self._listeners):
            listener(runtime_id, old, new)
        if new is None:
            return
        for states, future in self._waiters.get(runtime_id, []):
            if new.state in states and not future.done():
                future.set_result(new)


class LifecycleService:
    """The ``connectplugin.v1.PluginLifecycle`` Connect service: authenticated ReportHealth."""

    def __init__(self, tracker: HealthTracker, tokens: TokenValidator) -> None:
        self._tracker = tracker
        self._tokens = tokens

    async def report_health(
        self,
        request: lifecycle_pb2.ReportHealthRequest,
        ctx: RequestContext[lifecycle_pb2.ReportHealthRequest, lifecycle_pb2.ReportHealthResponse],
    ) -> lifecycle_pb2.ReportHealthResponse:
        caller = check_credentials(ctx.request_headers.get, self._tokens)
        if request.state not in (HEALTHY, DEGRADED, UNHEALTHY):
            raise ConnectError(
                Code.INVALID_ARGUMENT, "state: must be HEALTHY, DEGRADED or UNHEALTHY"
            )
        self._tracker.report(
            caller, request.state, request.reason, list(request.unavailable_dependencies)
        )
        return lifecycle_pb2.ReportHealthResponse()
