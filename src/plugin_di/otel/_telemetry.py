"""`OtelTelemetry`: plugin-di's telemetry hooks (`plugin_di.rpc.telemetry`) on OpenTelemetry.

Calls are traced and measured by connectrpc-otel's `OpenTelemetryInterceptor` (one for
clients, one for servers): spans named ``package.Service/Method``, the histograms
``rpc.client.call.duration`` and ``rpc.server.call.duration`` (their count is the number
of calls), ``rpc.response.status_code`` on failures. The rest is plugin-di's own:
the host router's spans and ``plugin_di.route.duration``, and the plugins' lifecycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectrpc_otel import OpenTelemetryInterceptor
from opentelemetry.metrics import MeterProvider
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import TracerProvider

from plugin_di._version import __version__
from plugin_di.otel._route import RoutedCall
from plugin_di.rpc.telemetry import ENV_SWITCH

__all__ = [
    "HEALTH_STATES",
    "HOST_HEALTH",
    "PLUGIN_CRASHES",
    "PLUGIN_HEALTH",
    "PLUGIN_RESTARTS",
    "ROUTE_DURATION",
    "OtelTelemetry",
]

ROUTE_DURATION = "plugin_di.route.duration"
PLUGIN_RESTARTS = "plugin_di.plugin.restarts"
PLUGIN_CRASHES = "plugin_di.plugin.crashes"
PLUGIN_HEALTH = "plugin_di.plugin.health"
HOST_HEALTH = "plugin_di.host.provider.health"
HEALTH_STATES = ("HEALTHY", "DEGRADED", "UNHEALTHY")
PLUGIN = "plugin_di.plugin"
RUNTIME_ID = "plugin_di.runtime_id"
STATE = "plugin_di.health.state"
_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]


class OtelTelemetry:
    """The hooks, on the given providers and propagator (a `plugin_di.rpc.telemetry.Telemetry`)."""

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        propagator: TextMapPropagator,
    ) -> None:
        common: dict[str, Any] = {
            "tracer_provider": tracer_provider,
            "meter_provider": meter_provider,
            "propagator": propagator,
        }
        self._client = OpenTelemetryInterceptor(client=True, **common)
        self._server = OpenTelemetryInterceptor(client=False, **common)
        self._propagator = propagator
        self._tracer = tracer_provider.get_tracer("plugin_di", __version__)
        meter = meter_provider.get_meter("plugin_di", __version__)
        self._route_duration = meter.create_histogram(
            ROUTE_DURATION,
            unit="s",
            description="Routed calls through the host's router, from routing to the answer",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        self._restarts = meter.create_counter(
            PLUGIN_RESTARTS, unit="{restart}", description="Plugin processes restarted"
        )
        self._crashes = meter.create_counter(
            PLUGIN_CRASHES, unit="{crash}", description="Plugin processes that ended unasked"
        )
        self._plugin_health = meter.create_gauge(
            PLUGIN_HEALTH,
            unit="1",
            description="1 for the state a plugin of this app is in, 0 for the others",
        )
        self._host_health = meter.create_gauge(
            HOST_HEALTH,
            unit="1",
            description="1 for the state a provider last reported to this host, 0 for the others",
        )

    def client_interceptors(self) -> Sequence[Any]:
        return (self._client,)

    def server_interceptors(self) -> Sequence[Any]:
        return (self._server,)

    def route(self, method: str, provider: str, headers: list[tuple[bytes, bytes]]) -> RoutedCall:
        return RoutedCall(
            self._tracer, self._propagator, self._route_duration, method, provider, headers
        )

    def plugin_event(self, plugin: str, kind: str, health: str | None) -> None:
        attributes = {PLUGIN: plugin}
        if kind == "restarted":
            self._restarts.add(1, attributes)
        elif kind == "crashed":
            self._crashes.add(1, attributes)
        _set_state(self._plugin_health, PLUGIN, plugin, health)

    def health_changed(self, subject: str, state: str | None) -> None:
        _set_state(self._host_health, RUNTIME_ID, subject, state)

    def child_env(self) -> Mapping[str, str]:
        # the app's own service name is not inherited: a plugin is named by its name
        return {ENV_SWITCH: "1", "OTEL_SERVICE_NAME": ""}


def _set_state(gauge: Any, key: str, subject: str, state: str | None) -> None:
    """1 for ``state``, 0 for the other states (all 0 when None)."""
    for name in HEALTH_STATES:
        gauge.set(1 if name == state else 0, {key: subject, STATE: name})
