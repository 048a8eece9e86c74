"""SDK tracer and meter providers configured by the standard ``OTEL_*`` variables.

For plugin processes (``PLUGIN_DI_OTEL=1``): ``OTEL_TRACES_EXPORTER`` and
``OTEL_METRICS_EXPORTER`` name exporters (comma-separated; default ``otlp``; ``none``:
no export) as their packages register them (the ``opentelemetry_traces_exporter`` and
``opentelemetry_metrics_exporter`` entry points: ``console`` comes with the SDK,
``otlp_proto_http`` with opentelemetry-exporter-otlp-proto-http). ``otlp`` means
``otlp_proto_http``, or ``otlp_proto_grpc`` when ``OTEL_EXPORTER_OTLP[_TRACES|_METRICS]_PROTOCOL``
is ``grpc``. The service name is ``OTEL_SERVICE_NAME``, else the one given (a plugin's
name). Each exporter reads its own variables (``OTEL_EXPORTER_OTLP_ENDPOINT``...) from the
process environment, as the resource reads ``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

__all__ = ["EnvProviders", "providers_from_env"]

log = logging.getLogger(__name__)

_GROUPS = {"traces": "opentelemetry_traces_exporter", "metrics": "opentelemetry_metrics_exporter"}
_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}


@dataclass(frozen=True)
class EnvProviders:
    """The providers made from the environment, and the names of the exporters they got;
    `shutdown` flushes and stops them."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    span_exporters: tuple[str, ...] = ()
    metric_exporters: tuple[str, ...] = ()

    def shutdown(self) -> None:
        """Export what is pending, then stop both providers (a plugin process's last step)."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def providers_from_env(environ: Mapping[str, str], service_name: str) -> EnvProviders:
    """Tracer and meter providers with the exporters ``environ`` names (module docstring)."""
    name = environ.get("OTEL_SERVICE_NAME") or service_name
    resource = Resource.create({"service.name": name})  # OTEL_RESOURCE_ATTRIBUTES add to it
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    span_exporters = _exporters("traces", environ)
    for exporter in span_exporters.values():
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    metric_exporters = _exporters("metrics", environ)
    readers: list[MetricReader] = [
        PeriodicExportingMetricReader(exporter) for exporter in metric_exporters.values()
    ]
    meter_provider = MeterProvider(
        resource=resource, metric_readers=readers, shutdown_on_exit=False
    )
    return EnvProviders(
        tracer_provider, meter_provider, tuple(span_exporters), tuple(metric_exporters)
    )


def _exporters(signal: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The exporters ``environ`` names for ``signal``, by entry point name."""
    names = environ.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp")
    found: dict[str, Any] = {}
    for name in (n.strip() for n in names.split(",")):
        if not name or name == "none":
            continue
        if name == "otlp":
            protocol = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            name = _BY_PROTOCOL.get(protocol.strip(), "otlp_proto_http")
        loaded = entry_points(group=_GROUPS[signal], name=name)
        if not loaded:
            log.warning(
                "OTEL_%s_EXPORTER names %r, which no installed package provides: no %s are "
                "exported (install the exporter, e.g. opentelemetry-exporter-otlp-proto-http)",
                signal.upper(),
                name,
                signal,
            )
            continue
        found[name] = next(iter(loaded)).load()()
    return found
