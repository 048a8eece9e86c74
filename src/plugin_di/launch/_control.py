"""Host side of ``connectplugin.v1.PluginControl``: ask a plugin for its health, or to stop."""

from __future__ import annotations

import math

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.gen.connectplugin.v1 import lifecycle_pb2 as pb
from plugin_di.gen.connectplugin.v1.lifecycle_connect import PluginControlClient
from plugin_di.launch._endpoint import EndpointClient
from plugin_di.launch.events import HealthState, PluginHealth
from plugin_di.launch.process import ShutdownCall

HEALTH_TIMEOUT_MS = 2000


def control_client(endpoint: EndpointClient) -> PluginControlClient:
    """The PluginControl client on a plugin's endpoint."""
    return endpoint.client(PluginControlClient, timeout_ms=HEALTH_TIMEOUT_MS)


async def remote_health(endpoint: EndpointClient) -> PluginHealth:
    """``GetHealth`` of the plugin behind ``endpoint``; UNHEALTHY when it cannot be asked.

    A plugin without the control service (UNIMPLEMENTED) but answering counts as HEALTHY.
    """
    try:
        response = await control_client(endpoint).get_health(pb.GetHealthRequest())
    except ConnectError as exc:
        if exc.code is Code.UNIMPLEMENTED:
            return PluginHealth(HealthState.HEALTHY, "serving (no PluginControl service)")
        return PluginHealth(HealthState.UNHEALTHY, f"unreachable: {exc.code.name}: {exc.message}")
    try:
        state = HealthState(response.state)
    except ValueError:
        state = HealthState.UNSPECIFIED
    if state is HealthState.UNSPECIFIED:
        state = HealthState.HEALTHY  # connect-plugin-go: never reported counts as routable
    reason = response.reason
    if response.unavailable_dependencies:
        reason += f" (unavailable: {', '.join(response.unavailable_dependencies)})"
    return PluginHealth(state, reason)


def shutdown_call(endpoint: EndpointClient, reason: str = "host is stopping") -> ShutdownCall:
    """A `ShutdownCall` sending ``PluginControl.Shutdown(grace)``; it fails unless acknowledged."""

    async def call(grace: float) -> None:
        response = await control_client(endpoint).shutdown(
            pb.ShutdownRequest(grace_period_seconds=max(1, math.ceil(grace)), reason=reason)
        )
        if not response.acknowledged:
            raise ConnectError(Code.UNIMPLEMENTED, "plugin did not acknowledge Shutdown")

    return call
