"""One trace across real processes: the app (this test), the host's router in it, and a plugin
process the app launched, which exports its spans over OTLP/HTTP as ``OTEL_*`` tell it.

The app records in memory (an in-memory span exporter and metric reader); the plugin process
gets ``PLUGIN_DI_OTEL=1`` from the launcher and sends its spans to a real OTLP receiver on
127.0.0.1. Metrics: calls, latencies and errors by code; a restart and the health changes it
brings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from dependency_injector import containers, providers
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from plugin_di.di.app import App
from plugin_di.di.events import EmitterProvider, Event
from plugin_di.di.providers import ProcessPlugin, app_zygote, plugin_handles
from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.host.admission import AdmissionPolicy, AllowEntry
from plugin_di.host.server import Host
from plugin_di.launch.config import Backoff, RestartPolicy, Supervision
from plugin_di.launch.events import PluginCrashed, PluginRestarted
from plugin_di.launch.process_handle import ProcessHandle
from plugin_di.otel import (
    HOST_HEALTH,
    PLUGIN_CRASHES,
    PLUGIN_HEALTH,
    PLUGIN_RESTARTS,
    ROUTE_DURATION,
    instrument,
)
from plugin_di.plugin.host_client import HostClient
from tests.otel.support import OTLPReceiver, Point, SeenSpan, local_spans, observed_plugin, points
from tests.support.host import h2_client

ROOT = Path(__file__).resolve().parents[2]
PUT = "kv.v1.KVService/Put"
GET = "kv.v1.KVService/Get"


@dataclass
class Recorded:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    with instrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        propagator=TraceContextTextMapPropagator(),
    ):
        yield Recorded(spans, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _container(
    plugin_env: dict[str, str], restart: RestartPolicy = RestartPolicy.ALWAYS
) -> type[containers.DeclarativeContainer]:
    class Observed(containers.DeclarativeContainer):
        events = EmitterProvider()
        host = providers.Singleton(
            Host, bind="127.0.0.1:0", admission=AdmissionPolicy(allow=(AllowEntry("app"),))
        )
        kv = ProcessPlugin(
            observed_plugin(),
            module="tests.otel.observed_kv",
            cwd=str(ROOT),
            env=plugin_env,
            host=host,
            events=events,
            supervision=Supervision(restart=restart, backoff=Backoff(base=0.05)),
        )

    return Observed


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as found:
        yield found


class EventLog:
    """An App sink: the events, and a snapshot of a metric taken as each event arrives."""

    def __init__(self, reader: InMemoryMetricReader, metric: str) -> None:
        self.events: list[Event] = []
        self.snapshots: list[tuple[str, list[Point]]] = []
        self._reader = reader
        self._metric = metric
        self.changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, PluginCrashed | PluginRestarted):
            self.snapshots.append((type(event).__name__, points(self._reader, self._metric)))
        self.changed.set()

    async def wait_for(self, kind: type[Any]) -> Any:
        async with asyncio.timeout(30):
            while True:
                found = [e for e in self.events if isinstance(e, kind)]
                if found:
                    return found[0]
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def routed_kv() -> AsyncIterator[Any]:
    """``make(host, http2)``: the KV client routed through ``host``, over HTTP/1.1 (the
    host's short path: its splice) or HTTP/2 (its ASGI router); closed afterwards."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(host: Host, http2: bool) -> KVServiceClient:
            http = await stack.enter_async_context(h2_client()) if http2 else None
            client = HostClient(host.url, http_client=http)
            stack.push_async_callback(client.close)
            await client.handshake("app")
            watch = client.watch("kv")  # the plugin registers once it serves: wait for it
            async with asyncio.timeout(30):
                for _ in range(10):
                    event = await anext(watch)
                    if event.state == registry_pb2.SERVICE_STATE_AVAILABLE:
                        break
            await watch.aclose()  # type: ignore[attr-defined]
            found = await client.discover("kv")
            return client.routed_client(KVServiceClient, found.endpoint)

        yield make


def _one(spans: list[SeenSpan], **match: str) -> SeenSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, spans)
    return found[0]


@pytest.mark.parametrize("http2", [False, True], ids=["host-splice", "host-asgi-router"])
async def test_a_routed_call_is_one_trace_across_the_app_the_host_and_the_plugin_process(
    recorded: Recorded,
    receiver: OTLPReceiver,
    routed_kv: Any,
    http2: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop")  # the app's: a plugin keeps its own name
    plugin_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
    }
    app = App(_container(plugin_env), sinks=[])
    await app.start()
    try:
        zygote = app_zygote(app)  # the plugin was forked from it, OpenTelemetry imported ahead
        assert zygote is not None
        assert "plugin_di.otel" in zygote.optional
        assert zygote.zygote is not None
        assert not [m for m in zygote.zygote.skipped if m.startswith("plugin_di.otel")]
        kv = await routed_kv(app.container.host(), http2)
        await kv.put(kv_pb2.PutRequest(key="a", value=b"1"), timeout_ms=10_000)
        with pytest.raises(ConnectError) as missing:
            await kv.get(kv_pb2.GetRequest(key="nope"), timeout_ms=10_000)
        assert missing.value.code is Code.NOT_FOUND
    finally:
        await app.stop()  # the plugin process exports what it batched before it exits

    here = local_spans(recorded.spans.get_finished_spans(), "app")
    app_put = _one(here, name=PUT, kind="CLIENT")
    host_put = _one(here, name=PUT, kind="SERVER")
    plugin_put = _one(receiver.spans, name=PUT, kind="SERVER")
    assert plugin_put.service == "kv"  # not the app's "shop"
    assert app_put.parent == ""  # the app's call starts the trace
    assert {app_put.trace_id, host_put.trace_id, plugin_put.trace_id} == {app_put.trace_id}
    assert host_put.parent == app_put.span_id
    assert plugin_put.parent == host_put.span_id
    assert host_put.attributes["plugin_di.provider"].startswith("kv")

    # the failed Get: the same links in a trace of its own, the code on both ends
    app_get = _one(here, name=GET, kind="CLIENT")
    plugin_get = _one(receiver.spans, name=GET, kind="SERVER")
    assert app_get.trace_id != app_put.trace_id
    assert plugin_get.trace_id == app_get.trace_id
    assert app_get.attributes["rpc.response.status_code"] == "not_found"
    assert plugin_get.attributes["rpc.response.status_code"] == "not_found"

    calls = points(recorded.metrics, "rpc.client.call.duration")
    put_calls = [p for p in calls if p.attributes["rpc.method"] == PUT]
    assert [(p.count, "rpc.response.status_code" in p.attributes) for p in put_calls] == [
        (1, False)
    ]
    assert put_calls[0].value > 0  # the latency histogram's sum, in seconds
    failed = [p for p in calls if p.attributes.get("rpc.response.status_code") == "not_found"]
    assert [(p.attributes["rpc.method"], p.count) for p in failed] == [(GET, 1)]
    # the host's route metric; the ASGI router reads the code from the answer, the splice
    # relays bytes it does not parse (the plugin's and the app's spans carry the code)
    routed = points(recorded.metrics, ROUTE_DURATION)
    seen = sorted(
        (p.attributes["rpc.method"], p.attributes.get("rpc.response.status_code"), p.count)
        for p in routed
    )
    assert seen == [(GET, "not_found" if http2 else None, 1), (PUT, None, 1)]
    host_get = _one(here, name=GET, kind="SERVER")
    assert host_get.parent == app_get.span_id
    assert plugin_get.parent == host_get.span_id
    assert host_get.attributes.get("rpc.response.status_code") == ("not_found" if http2 else None)


async def test_a_restart_and_the_health_changes_show_in_metrics(recorded: Recorded) -> None:
    off = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
    log = EventLog(recorded.metrics, PLUGIN_HEALTH)
    app = App(_container(off), sinks=[log])
    await app.start()
    try:
        healthy = HealthyProviders(app.container.host(), "kv")
        [first_id] = await healthy.wait_for(1)
        before = _states(points(recorded.metrics, HOST_HEALTH), "plugin_di.runtime_id")
        handle = plugin_handles(app.container)["kv"]
        assert isinstance(handle, ProcessHandle)
        assert handle.pid is not None
        first_pid = handle.pid
        os.kill(first_pid, signal.SIGKILL)
        await log.wait_for(PluginRestarted)
        assert handle.pid != first_pid
        [_, second_id] = await healthy.wait_for(2)  # the new process joined and reported
        after = _states(points(recorded.metrics, HOST_HEALTH), "plugin_di.runtime_id")
    finally:
        await app.stop()

    def kv_states(snapshot: list[Point]) -> dict[str, float]:
        return _states(snapshot, "plugin_di.plugin")["kv"]

    # the app's view, from its plugin events: UNHEALTHY once crashed, HEALTHY once restarted
    snapshots = {kind: kv_states(found) for kind, found in log.snapshots}
    assert snapshots["PluginCrashed"] == {"HEALTHY": 0, "DEGRADED": 0, "UNHEALTHY": 1}
    assert snapshots["PluginRestarted"] == {"HEALTHY": 1, "DEGRADED": 0, "UNHEALTHY": 0}
    [restarts] = points(recorded.metrics, PLUGIN_RESTARTS)
    assert (restarts.attributes, restarts.value) == ({"plugin_di.plugin": "kv"}, 1)
    [crashes] = points(recorded.metrics, PLUGIN_CRASHES)
    assert (crashes.attributes, crashes.value) == ({"plugin_di.plugin": "kv"}, 1)
    # the host's view, from the reports: the new process's identity reported HEALTHY
    healthy_only = {"HEALTHY": 1, "DEGRADED": 0, "UNHEALTHY": 0}
    assert before[first_id] == healthy_only
    assert second_id not in before
    assert after[second_id] == healthy_only


async def test_a_call_the_host_cannot_relay_is_unavailable_on_its_span(
    recorded: Recorded, routed_kv: Any
) -> None:
    off = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
    log = EventLog(recorded.metrics, PLUGIN_HEALTH)
    app = App(_container(off, RestartPolicy.NEVER), sinks=[log])
    await app.start()
    try:
        kv = await routed_kv(app.container.host(), False)  # HTTP/1.1: the host's splice
        handle = plugin_handles(app.container)["kv"]
        assert isinstance(handle, ProcessHandle)
        assert handle.pid is not None
        os.kill(handle.pid, signal.SIGKILL)
        await log.wait_for(PluginCrashed)  # gone, still registered (until its lease ends)
        with pytest.raises(ConnectError) as refused:
            await kv.put(kv_pb2.PutRequest(key="a", value=b"1"), timeout_ms=10_000)
        assert refused.value.code is Code.UNAVAILABLE
    finally:
        await app.stop()
    [host_put] = [
        s
        for s in local_spans(recorded.spans.get_finished_spans(), "app")
        if (s.name, s.kind) == (PUT, "SERVER")
    ]
    assert host_put.attributes["rpc.response.status_code"] == "unavailable"
    [routed] = points(recorded.metrics, ROUTE_DURATION)
    assert (routed.attributes["rpc.response.status_code"], routed.count) == ("unavailable", 1)


class HealthyProviders:
    """The runtime ids of a service type's providers that reported HEALTHY to ``host``."""

    def __init__(self, host: Host, service_type: str) -> None:
        self._host = host
        self._type = service_type
        self._seen: list[str] = []
        self._changed = asyncio.Event()
        host.tracker.add_listener(self._on_change)

    def _on_change(self, runtime_id: str, old: Any, new: Any) -> None:
        self._changed.set()

    def _healthy(self) -> list[str]:
        for registration in self._host.registry.providers(self._type):
            report = self._host.tracker.get(registration.runtime_id)
            known = registration.runtime_id in self._seen
            if report is not None and report.state_name == "HEALTHY" and not known:
                self._seen.append(registration.runtime_id)
        return list(self._seen)

    async def wait_for(self, count: int) -> list[str]:
        """The first ``count`` of them, in the order they reported, once there are as many."""
        async with asyncio.timeout(30):
            while len(self._healthy()) < count:
                self._changed.clear()
                await self._changed.wait()
        return self._seen[:count]


def _states(found: list[Point], key: str) -> dict[str, dict[str, float]]:
    """``{subject: {state: value}}`` of a health gauge."""
    result: dict[str, dict[str, float]] = {}
    for point in found:
        subject = point.attributes[key]
        result.setdefault(subject, {})[point.attributes["plugin_di.health.state"]] = point.value
    return result
