"""The hooks one at a time: the plugin server's unary short path, in-memory plugins, the
router's reading of codes, the switch's default off, and exporters chosen by ``OTEL_*``."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dependency_injector import containers
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from plugin_di.di.app import App
from plugin_di.di.providers import InMemoryPlugin
from plugin_di.otel import (
    ROUTE_DURATION,
    Instrumentation,
    OtelTelemetry,
    instrument,
    providers_from_env,
)
from plugin_di.plugin.observed import observed_from_env
from plugin_di.rpc import telemetry
from plugin_di.rpc.asgi import Message
from plugin_di.rpc.interceptors import InterceptorChain
from tests.otel.support import local_spans, observed_plugin, points
from tests.support.host import served

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@dataclass
class Recorded:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    instrumentation: Instrumentation


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    with instrument(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        propagator=TraceContextTextMapPropagator(),
    ) as instrumentation:
        yield Recorded(spans, reader, instrumentation)


async def _post(url: str, path: str, body: bytes, *headers: bytes) -> bytes:
    """One Connect unary POST of application/proto on HTTP/1.1 (what the short path takes);
    the status line of the answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    head = [
        b"POST " + path.encode() + b" HTTP/1.1",
        b"host: kv",
        b"content-type: application/proto",
        b"content-length: %d" % len(body),
        *headers,
    ]
    writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
    async with asyncio.timeout(10):
        status = await reader.readline()
    writer.close()
    return status


async def test_the_unary_short_path_serves_with_a_span_child_of_the_callers(
    recorded: Recorded,
) -> None:
    traceparent = f"traceparent: 00-{TRACE_ID}-{PARENT_ID}-01".encode()
    put = kv_pb2.PutRequest(key="k", value=b"v").SerializeToString()
    boom = kv_pb2.GetRequest(key="boom").SerializeToString()  # the implementation raises
    async with served(observed_plugin()) as (_, url):
        put_status = await _post(url, "/kv.v1.KVService/Put", put, traceparent)
        boom_status = await _post(url, "/kv.v1.KVService/Get", boom)
    assert put_status.startswith(b"HTTP/1.1 200")
    assert boom_status.startswith(b"HTTP/1.1 500")
    spans = {s.name: s for s in local_spans(recorded.spans.get_finished_spans(), "kv")}
    put_span, boom_span = spans["kv.v1.KVService/Put"], spans["kv.v1.KVService/Get"]
    assert (put_span.kind, put_span.trace_id, put_span.parent) == ("SERVER", TRACE_ID, PARENT_ID)
    assert boom_span.parent == ""  # no caller's context: a trace of its own
    # the code the caller got, not the exception (SanitizeErrors is inside the span)
    assert boom_span.attributes["rpc.response.status_code"] == "internal"
    assert boom_span.attributes["error.type"] == "ConnectError"


async def test_an_in_memory_plugin_has_a_client_and_a_server_span(recorded: Recorded) -> None:
    class Memory(containers.DeclarativeContainer):
        kv = InMemoryPlugin(observed_plugin())

    app = App(Memory, sinks=[])
    await app.start()
    try:
        client = app.container.kv().client(KVServiceClient)
        await client.put(kv_pb2.PutRequest(key="a", value=b"1"))
    finally:
        await app.stop()
    spans = local_spans(recorded.spans.get_finished_spans(), "app")
    kinds = {s.kind: s for s in spans if s.name == "kv.v1.KVService/Put"}
    assert kinds["SERVER"].parent == kinds["CLIENT"].span_id
    assert kinds["SERVER"].trace_id == kinds["CLIENT"].trace_id


def test_without_instrument_nothing_is_added_and_uninstrument_removes_it(
    recorded: Recorded,
) -> None:
    installed = recorded.instrumentation.telemetry
    chain = InterceptorChain(retry=None, breaker=None, header_limits=None)
    assert chain.client_interceptors("http://127.0.0.1:1") == list(installed.client_interceptors())
    assert chain.server_interceptors() == list(installed.server_interceptors())
    recorded.instrumentation.uninstrument()
    assert telemetry.current() is None
    assert chain.client_interceptors("http://127.0.0.1:1") == []
    assert chain.server_interceptors() == []


def test_the_switch_is_off_unless_set() -> None:
    assert not telemetry.enabled_in({})
    assert not telemetry.enabled_in({"PLUGIN_DI_OTEL": "0"})
    assert telemetry.enabled_in({"PLUGIN_DI_OTEL": "1"})
    assert telemetry.enabled_in({"PLUGIN_DI_OTEL": "true"})


def _route(telemetry_: OtelTelemetry, messages: list[Message]) -> None:
    call = telemetry_.route("kv.v1.KVService/Get", "kv-1", [(b"content-type", b"x")])
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def relay() -> None:
        observed = call.observe(send)
        for message in messages:
            await observed(message)

    asyncio.run(relay())
    assert sent == messages  # passed on unchanged
    call.end()
    call.end()  # once: a refused splice is ended again when its connection is released


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        (  # gRPC: the status in the trailers
            [
                {"type": "http.response.start", "status": 200,
                 "headers": [(b"content-type", b"application/grpc")]},
                {"type": "http.response.body", "body": b"", "more_body": False},
                {"type": "http.response.trailers", "headers": [(b"grpc-status", b"5")]},
            ],
            "not_found",
        ),
        (  # gRPC trailers-only
            [{"type": "http.response.start", "status": 200, "headers": [(b"grpc-status", b"7")]}],
            "permission_denied",
        ),
        (  # Connect unary: the JSON error's code, over the HTTP status
            [
                {"type": "http.response.start", "status": 400,
                 "headers": [(b"content-type", b"application/json")]},
                {"type": "http.response.body", "body": b'{"code": "failed_', "more_body": True},
                {"type": "http.response.body", "body": b'precondition"}', "more_body": False},
            ],
            "failed_precondition",
        ),
        (  # no code in the answer: the HTTP status's
            [{"type": "http.response.start", "status": 503, "headers": []}],
            "unavailable",
        ),
        (  # success
            [
                {"type": "http.response.start", "status": 200, "headers": []},
                {"type": "http.response.body", "body": b"ok", "more_body": False},
            ],
            None,
        ),
    ],
)  # fmt: skip
def test_the_router_reads_the_code_of_the_answer(
    recorded: Recorded, messages: list[Message], code: str | None
) -> None:
    _route(recorded.instrumentation.telemetry, messages)
    [point] = points(recorded.metrics, ROUTE_DURATION)
    assert point.count == 1
    assert point.attributes.get("rpc.response.status_code") == code
    [span] = local_spans(recorded.spans.get_finished_spans(), "app")
    assert span.attributes.get("rpc.response.status_code") == code


def test_exporters_come_from_the_otel_variables(caplog: pytest.LogCaptureFixture) -> None:
    off = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
    made = providers_from_env(off, "kv")
    made.shutdown()
    assert made.tracer_provider.resource.attributes["service.name"] == "kv"
    assert (made.span_exporters, made.metric_exporters) == ((), ())
    named = providers_from_env(
        {"OTEL_SERVICE_NAME": "named", "OTEL_TRACES_EXPORTER": "console,otlp",
         "OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
        "kv",
    )  # fmt: skip
    named.shutdown()
    assert named.tracer_provider.resource.attributes["service.name"] == "named"
    assert named.span_exporters == ("console", "otlp_proto_http")  # otlp: http/protobuf
    with caplog.at_level(logging.WARNING):
        providers_from_env({**off, "OTEL_TRACES_EXPORTER": "nope"}, "kv").shutdown()
    assert "OTEL_TRACES_EXPORTER names 'nope', which no installed package provides" in caplog.text


def test_the_switch_without_the_extra_warns_and_runs_uninstrumented(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "plugin_di.otel", None)  # as if the extra were missing
    ran = False
    with observed_from_env({"PLUGIN_DI_OTEL": "1"}, "kv"):
        ran = telemetry.current() is None
    assert ran
    assert "PLUGIN_DI_OTEL is set but" in capsys.readouterr().err
