"""The otel tests' helpers: a real OTLP/HTTP receiver for the spans of other processes, and
readers of the spans and metrics the test process records in memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan

from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from plugin_di.plugin.definition import Plugin, Service
from tests.support.kv import KV


def observed_plugin() -> Plugin:
    """The plugin ``tests.otel.observed_kv`` serves: the KV double, where a missing key is
    NOT_FOUND (a call that fails with a known code)."""
    return Plugin(
        name="kv",
        version="1.0.0",
        services=[Service(KVServiceASGIApplication, KVServiceClient, impl=KV(missing="not_found"))],
    )


@dataclass(frozen=True)
class SeenSpan:
    """One span, from whichever process: ids as hex, ``parent`` empty for a root."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, Any]


class OTLPReceiver:
    """A collector's OTLP/HTTP trace endpoint on 127.0.0.1 (``/v1/traces``, protobuf)."""

    def __init__(self) -> None:
        self.spans: list[SeenSpan] = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                ok = self.path == "/v1/traces"
                if ok:
                    receiver._add(ExportTraceServiceRequest.FromString(body))
                self.send_response(200 if ok else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _add(self, request: ExportTraceServiceRequest) -> None:
        self.requests += 1
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes
                 if a.key == "service.name"), "",
            )  # fmt: skip
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        SeenSpan(
                            service=service,
                            name=span.name,
                            kind=_KINDS.get(span.kind, str(span.kind)),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def local_spans(spans: tuple[ReadableSpan, ...], service: str) -> list[SeenSpan]:
    """The spans an in-memory exporter of this process holds, as `SeenSpan`."""
    found = []
    for span in spans:
        context = span.get_span_context()
        assert context is not None
        parent = span.parent
        found.append(
            SeenSpan(
                service=service,
                name=span.name,
                kind=span.kind.name,
                trace_id=f"{context.trace_id:032x}",
                span_id=f"{context.span_id:016x}",
                parent=f"{parent.span_id:016x}" if parent is not None else "",
                attributes=dict(span.attributes or {}),
            )
        )
    return found


@dataclass(frozen=True)
class Point:
    """One data point of a metric: its attributes and its value (a histogram's count and sum)."""

    attributes: dict[str, Any]
    value: float
    count: int = 0


def points(reader: InMemoryMetricReader, name: str) -> list[Point]:
    """The data points of metric ``name`` the reader collects now."""
    return list(_points(reader, name))


def _points(reader: InMemoryMetricReader, name: str) -> Iterator[Point]:
    data = reader.get_metrics_data()
    if data is None:
        return
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    if hasattr(point, "count"):
                        yield Point(attributes, float(point.sum), int(point.count))
                    else:
                        yield Point(attributes, float(point.value))
