"""PluginControl: the host asks a plugin for its health, or tells it to stop."""

from __future__ import annotations

from collections.abc import Callable

from connectrpc.request import RequestContext

from plugin_di.gen.connectplugin.v1 import lifecycle_pb2 as pb
from plugin_di.gen.connectplugin.v1.lifecycle_connect import PluginControl
from plugin_di.plugin.health import Health

ShutdownRequested = Callable[[float, str], None]
"""Called with the grace period in seconds and the reason; must not block."""

DEFAULT_GRACE_SECONDS = 5.0
"""As ``Settings.shutdown_grace``; ``PLUGIN_DI_SHUTDOWN_GRACE`` overrides it for `serve`."""


class PluginControlServer(PluginControl):
    """``connectplugin.v1.PluginControl`` over a `Health` and a shutdown callback."""

    def __init__(
        self,
        health: Health,
        on_shutdown: ShutdownRequested | None = None,
        *,
        default_grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self._health = health
        self._on_shutdown = on_shutdown
        self._default_grace = default_grace_seconds

    async def get_health(
        self,
        request: pb.GetHealthRequest,
        ctx: RequestContext[pb.GetHealthRequest, pb.GetHealthResponse],
    ) -> pb.GetHealthResponse:
        report = self._health.current
        return pb.GetHealthResponse(
            state=int(report.state),  # type: ignore[arg-type]
            reason=report.reason,
            unavailable_dependencies=list(report.unavailable_dependencies),
        )

    async def shutdown(
        self,
        request: pb.ShutdownRequest,
        ctx: RequestContext[pb.ShutdownRequest, pb.ShutdownResponse],
    ) -> pb.ShutdownResponse:
        if self._on_shutdown is None:
            return pb.ShutdownResponse(acknowledged=False)
        grace = float(request.grace_period_seconds) or self._default_grace
        # The callback only schedules the stop, so this response still gets out:
        # the server drains in-flight calls, this one included.
        self._on_shutdown(max(grace, 0.0), request.reason or "Shutdown RPC")
        return pb.ShutdownResponse(acknowledged=True)
