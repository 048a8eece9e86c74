"""The deployment shape: a standalone ``plugin-di host`` and a ``plugin-di serve`` plugin, each
its own process switched on by ``PLUGIN_DI_OTEL=1`` and exporting over OTLP/HTTP to a
receiver; the app is this test. A plugin serving without the switch loads no OpenTelemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.otel import instrument
from plugin_di.plugin.env import HOST_URL
from plugin_di.plugin.host_client import HostClient
from tests.otel.support import OTLPReceiver, local_spans
from tests.support.processes import running

ROOT = Path(__file__).resolve().parents[2]
PUT = "kv.v1.KVService/Put"
CLI = ["-m", "plugin_di"]


async def test_a_standalone_host_and_plugin_switched_on_by_env_join_the_apps_trace() -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    with OTLPReceiver() as receiver, contextlib.ExitStack() as processes:
        otel = {
            "PLUGIN_DI_OTEL": "1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_METRICS_EXPORTER": "none",
        }
        host = processes.enter_context(running([*CLI, "host", "--open-registration"], otel))
        plugin = processes.enter_context(
            running([*CLI, "serve", "examples.kv.plugin:plugin"], {**otel, HOST_URL: host.url})
        )
        with instrument(
            tracer_provider=tracer_provider, propagator=TraceContextTextMapPropagator()
        ):
            client = HostClient(host.url)
            try:
                await client.handshake("app")
                watch = client.watch("kv")
                async with asyncio.timeout(30):
                    for _ in range(10):
                        if (await anext(watch)).state == registry_pb2.SERVICE_STATE_AVAILABLE:
                            break
                await watch.aclose()  # type: ignore[attr-defined]
                found = await client.discover("kv")
                kv = client.routed_client(KVServiceClient, found.endpoint)
                await kv.put(kv_pb2.PutRequest(key="a", value=b"1"), timeout_ms=10_000)
            finally:
                await client.close()
        plugin.stop()  # each exports what it batched as it stops
        host.stop()
    assert (plugin.proc.returncode, host.proc.returncode) == (0, 0)

    [app_put] = [s for s in local_spans(spans.get_finished_spans(), "app") if s.name == PUT]
    by_service = {s.service: s for s in receiver.spans if s.name == PUT}
    host_put, plugin_put = by_service["plugin-di-host"], by_service["kv"]
    assert (app_put.kind, host_put.kind, plugin_put.kind) == ("CLIENT", "SERVER", "SERVER")
    assert {app_put.trace_id, host_put.trace_id, plugin_put.trace_id} == {app_put.trace_id}
    assert host_put.parent == app_put.span_id
    assert plugin_put.parent == host_put.span_id


# A raw HTTP/1.1 call, not a pyqwest client: pyqwest itself loads OpenTelemetry when it is
# installed (for its own HTTP spans), which says nothing of what the plugin runtime loads.
_IMPORTS = """
import asyncio, io, json, sys, tempfile
from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.plugin import plugin
from plugin_di.plugin.server import serve_async

async def main(environ):
    ready = asyncio.get_running_loop().create_future()
    with tempfile.TemporaryDirectory() as tmp:
        serving = asyncio.create_task(serve_async(
            plugin, uds=tmp + "/kv.sock", stdout=io.StringIO(), handle_signals=False,
            watch_parent=False, environ=environ,
            on_ready=lambda s, line: ready.set_result(s)))
        server = await asyncio.wait_for(ready, 30)
        body = pb.PutRequest(key="k", value=b"v").SerializeToString()
        reader, writer = await asyncio.open_unix_connection(tmp + "/kv.sock")
        writer.write(b"POST /kv.v1.KVService/Put HTTP/1.1\\r\\nhost: kv\\r\\n"
                     b"content-type: application/proto\\r\\n"
                     b"content-length: %d\\r\\n\\r\\n" % len(body) + body)
        status = await asyncio.wait_for(reader.readline(), 30)
        writer.close()
        server.request_stop(0.1, "test over")
        await asyncio.wait_for(serving, 30)
    assert status.startswith(b"HTTP/1.1 200"), status
    print(json.dumps(sorted(m for m in sys.modules
                            if m.split(".")[0] in ("opentelemetry", "connectrpc_otel")
                            or m.startswith("plugin_di.otel"))))

asyncio.run(main(json.loads(sys.argv[1])))
"""


def _loaded_while_serving(environ: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTS, json.dumps(environ)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_a_plugin_serving_without_the_switch_loads_no_opentelemetry() -> None:
    assert _loaded_while_serving({}) == []
    # the same script sees them when the switch is on (the check above can fail)
    switched = _loaded_while_serving(
        {"PLUGIN_DI_OTEL": "1", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
    )
    assert {"plugin_di.otel", "connectrpc_otel", "opentelemetry.sdk.trace"} <= set(switched)
