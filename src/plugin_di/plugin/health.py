"""Plugin health: a three-state report mapped to gRPC serving statuses, and the services serving it.

A plugin reports HEALTHY, DEGRADED or UNHEALTHY with a reason and the
dependencies it misses (connect-plugin-go's lifecycle model). Health checkers
see the gRPC view: HEALTHY and DEGRADED are SERVING, UNHEALTHY is NOT_SERVING.
After `shutdown()` everything is NOT_SERVING and further reports are ignored.

The same `Health` object backs ``connectplugin.health.v1.HealthService``,
``grpc.health.v1.Health`` and ``PluginControl.GetHealth``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.gen.connectplugin.health.v1 import health_pb2 as cp_health
from plugin_di.gen.connectplugin.health.v1.health_connect import HealthService
from plugin_di.gen.grpc.health.v1 import health_pb2 as grpc_health
from plugin_di.gen.grpc.health.v1.health_connect import Health as GrpcHealth

OVERALL = ""
"""The service name that stands for the whole plugin."""


class HealthState(enum.IntEnum):
    """The plugin's own view of its health (numbers as ``connectplugin.v1.HealthState``)."""

    UNSPECIFIED = 0
    HEALTHY = 1
    DEGRADED = 2
    UNHEALTHY = 3


class ServingStatus(enum.IntEnum):
    """gRPC health status (numbers shared by both health protos)."""

    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3


@dataclass(frozen=True)
class HealthReport:
    """A health report: state, why, and which dependencies are missing."""

    state: HealthState = HealthState.HEALTHY
    reason: str = ""
    unavailable_dependencies: Sequence[str] = ()

    @property
    def serving(self) -> ServingStatus:
        """SERVING for HEALTHY and DEGRADED (a degraded plugin still answers), else NOT_SERVING."""
        if self.state == HealthState.UNHEALTHY:
            return ServingStatus.NOT_SERVING
        return ServingStatus.SERVING


class Health:
    """Health of one plugin process: the report, per-service statuses and their watchers."""

    def __init__(self, services: Iterable[str] = ()) -> None:
        self._report = HealthReport()
        self._statuses: dict[str, ServingStatus] = {OVERALL: ServingStatus.SERVING}
        for name in services:
            self._statuses[name] = ServingStatus.SERVING
        self._watchers: dict[str, set[asyncio.Queue[ServingStatus | None]]] = {}
        self._shut_down = False

    @property
    def current(self) -> HealthReport:
        """The last report."""
        return self._report

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    def services(self) -> dict[str, ServingStatus]:
        """Every known service name and its status."""
        return dict(self._statuses)

    def status(self, service: str = OVERALL) -> ServingStatus | None:
        """The status of ``service``, or None when it is not known."""
        return self._statuses.get(service)

    def report(
        self,
        state: HealthState,
        reason: str = "",
        unavailable_dependencies: Sequence[str] = (),
    ) -> None:
        """Record a three-state report; every service follows it. Ignored after shutdown."""
        if self._shut_down:
            return
        self._report = HealthReport(state, reason, tuple(unavailable_dependencies))
        for name in list(self._statuses):
            self._set(name, self._report.serving)

    def set_status(self, service: str, status: ServingStatus) -> None:
        """Set one service's status (adding it if new). Ignored after shutdown."""
        if not self._shut_down:
            self._set(service, status)

    def shutdown(self) -> None:
        """Flip every service to NOT_SERVING, end all watches, and freeze."""
        if self._shut_down:
            return
        for name in list(self._statuses):
            self._set(name, ServingStatus.NOT_SERVING)
        self._shut_down = True
        for queues in self._watchers.values():
            for queue in queues:
                queue.put_nowait(None)

    async def watch(self, service: str = OVERALL) -> AsyncIterator[ServingStatus]:
        """Yield the current status, then every change (no consecutive duplicates).

        An unknown service yields SERVICE_UNKNOWN until it appears. The
        iteration ends after shutdown, once NOT_SERVING has been yielded.
        """
        queue: asyncio.Queue[ServingStatus | None] = asyncio.Queue()
        self._watchers.setdefault(service, set()).add(queue)
        try:
            last = self._statuses.get(service, ServingStatus.SERVICE_UNKNOWN)
            # Changes after this point are queued, shutdown's end marker included.
            ended = self._shut_down
            yield last
            if ended:
                return
            while True:
                status = await queue.get()
                if status is None:
                    return
                if status != last:
                    last = status
                    yield status
        finally:
            self._watchers[service].discard(queue)

    def _set(self, name: str, status: ServingStatus) -> None:
        self._statuses[name] = status
        for queue in self._watchers.get(name, ()):
            queue.put_nowait(status)


class ConnectPluginHealthService(HealthService):
    """``connectplugin.health.v1.HealthService`` over a `Health` (connect-plugin-go's shape)."""

    def __init__(self, health: Health) -> None:
        self._health = health

    async def check(
        self,
        request: cp_health.HealthCheckRequest,
        ctx: RequestContext[cp_health.HealthCheckRequest, cp_health.HealthCheckResponse],
    ) -> cp_health.HealthCheckResponse:
        status = self._health.status(request.service)
        if status is None:
            raise ConnectError(Code.NOT_FOUND, f"unknown service: {request.service}")
        return cp_health.HealthCheckResponse(status=int(status))  # type: ignore[arg-type]

    async def watch(
        self,
        request: cp_health.HealthCheckRequest,
        ctx: RequestContext[cp_health.HealthCheckRequest, cp_health.HealthCheckResponse],
    ) -> AsyncIterator[cp_health.HealthCheckResponse]:
        async for status in self._health.watch(request.service):
            yield cp_health.HealthCheckResponse(status=int(status))  # type: ignore[arg-type]


class GrpcHealthService(GrpcHealth):
    """The standard ``grpc.health.v1.Health`` (Check, Watch, List) over a `Health`."""

    def __init__(self, health: Health) -> None:
        self._health = health

    async def check(
        self,
        request: grpc_health.HealthCheckRequest,
        ctx: RequestContext[grpc_health.HealthCheckRequest, grpc_health.HealthCheckResponse],
    ) -> grpc_health.HealthCheckResponse:
        status = self._health.status(request.service)
        if status is None:
            raise ConnectError(Code.NOT_FOUND, f"unknown service: {request.service}")
        return grpc_health.HealthCheckResponse(status=int(status))  # type: ignore[arg-type]

    async def list(
        self,
        request: grpc_health.HealthListRequest,
        ctx: RequestContext[grpc_health.HealthListRequest, grpc_health.HealthListResponse],
    ) -> grpc_health.HealthListResponse:
        response = grpc_health.HealthListResponse()
        for name, status in self._health.services().items():
            response.statuses[name].status = cast(Any, int(status))
        return response

    async def watch(
        self,
        request: grpc_health.HealthCheckRequest,
        ctx: RequestContext[grpc_health.HealthCheckRequest, grpc_health.HealthCheckResponse],
    ) -> AsyncIterator[grpc_health.HealthCheckResponse]:
        async for status in self._health.watch(request.service):
            yield grpc_health.HealthCheckResponse(status=int(status))  # type: ignore[arg-type]


class HTTPProbes:
    """Kubernetes-style plain HTTP probes (connect-plugin-go's ``/healthz`` and ``/readyz``).

    ``/healthz`` answers 200 ``ok`` while the process serves (liveness);
    ``/readyz`` answers 200 ``ready`` when the whole plugin is SERVING, else
    503 ``not ready``.
    """

    def __init__(self, health: Health) -> None:
        self._health = health

    def ready(self) -> bool:
        """What ``/readyz`` answers: the whole plugin is SERVING."""
        return self._health.status() == ServingStatus.SERVING

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if path == "/healthz":
            status, body = 200, b"ok"
        elif path == "/readyz":
            status, body = (200, b"ready") if self.ready() else (503, b"not ready")
        else:
            status, body = 404, b"not found"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
