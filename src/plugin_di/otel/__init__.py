"""OpenTelemetry for plugin-di: one trace across the app, the host's router and the plugins.

Needs the extra: ``pip install 'plugin-di[otel]'``. Nothing else in plugin-di imports
OpenTelemetry; this package plugs into `plugin_di.rpc.telemetry`'s hooks::

    from plugin_di.otel import instrument

    instrument()  # the global tracer and meter providers, before the app builds its clients
    app = App(AppContainer)

From then on, every client the container builds and every server and router of the app
traces and measures its calls (W3C ``traceparent`` in the Connect/gRPC headers, through
the host's router, into the plugin processes), and the plugin processes the app launches
get ``PLUGIN_DI_OTEL=1``: they call `instrument_from_env`, which exports as the standard
``OTEL_*`` variables say. docs/observability.md lists the spans and metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

try:
    from opentelemetry import metrics, trace
except ModuleNotFoundError as missing:  # pragma: no cover - the extra is part of dev
    raise ModuleNotFoundError(
        "plugin_di.otel needs the otel extra: pip install 'plugin-di[otel]'", name=missing.name
    ) from missing
from opentelemetry.metrics import MeterProvider
from opentelemetry.propagate import get_global_textmap
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import TracerProvider

from plugin_di.otel._env import EnvProviders, providers_from_env
from plugin_di.otel._route import ROUTE_PROVIDER
from plugin_di.otel._telemetry import (
    HEALTH_STATES,
    HOST_HEALTH,
    PLUGIN_CRASHES,
    PLUGIN_HEALTH,
    PLUGIN_RESTARTS,
    ROUTE_DURATION,
    OtelTelemetry,
)
from plugin_di.rpc import telemetry as hooks

__all__ = [
    "HEALTH_STATES",
    "HOST_HEALTH",
    "PLUGIN_CRASHES",
    "PLUGIN_HEALTH",
    "PLUGIN_RESTARTS",
    "ROUTE_DURATION",
    "ROUTE_PROVIDER",
    "EnvProviders",
    "Instrumentation",
    "OtelTelemetry",
    "instrument",
    "instrument_from_env",
    "providers_from_env",
]


class Instrumentation:
    """What `instrument` installed; `uninstrument` (or leaving ``with``) removes it."""

    def __init__(
        self,
        telemetry: OtelTelemetry,
        previous: hooks.Telemetry | None,
        providers: EnvProviders | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.providers = providers
        """The SDK providers `instrument_from_env` made, else None (the caller's own)."""
        self._previous = previous

    def uninstrument(self) -> None:
        """Put back what was installed before; clients built meanwhile keep their spans."""
        if hooks.current() is self.telemetry:
            hooks.install(self._previous)

    def shutdown(self) -> None:
        """`uninstrument`, then flush and stop the providers `instrument_from_env` made."""
        self.uninstrument()
        if self.providers is not None:
            self.providers.shutdown()

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstrument()


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    propagator: TextMapPropagator | None = None,
) -> Instrumentation:
    """Trace and measure plugin-di's clients, servers and host router from now on.

    Without arguments the global providers and propagator are used (set them up first,
    e.g. with the SDK or ``opentelemetry-instrument``); the propagator is W3C Trace
    Context and Baggage unless ``OTEL_PROPAGATORS`` says otherwise. Clients and servers
    built before the call are not instrumented: call it before the app builds.
    """
    telemetry = OtelTelemetry(
        tracer_provider or trace.get_tracer_provider(),
        meter_provider or metrics.get_meter_provider(),
        propagator or get_global_textmap(),
    )
    return Instrumentation(telemetry, hooks.install(telemetry))


def instrument_from_env(
    environ: Mapping[str, str], *, service_name: str = "plugin-di"
) -> Instrumentation:
    """SDK providers from the ``OTEL_*`` variables in ``environ``, made global and
    instrumented: what a plugin process started with ``PLUGIN_DI_OTEL=1`` does.

    ``service_name`` is the default of ``OTEL_SERVICE_NAME`` (a plugin process passes
    its plugin's name). Call `Instrumentation.shutdown` before the process exits, so what
    is batched gets exported.
    """
    providers = providers_from_env(environ, service_name)
    trace.set_tracer_provider(providers.tracer_provider)
    metrics.set_meter_provider(providers.meter_provider)
    telemetry = OtelTelemetry(
        providers.tracer_provider, providers.meter_provider, get_global_textmap()
    )
    return Instrumentation(telemetry, hooks.install(telemetry), providers)
