"""The public edge, measured against the Go peer (connect-plugin-go) in the same run.

What a remote or cross-language caller meets: ``plugin-di serve`` on TCP, called by the Go
peer's client and compared with the Go peer's own server; plugin-di's client calling the Go
server, compared with the Go client; plugin-di's client calling a served plugin at a plain
``http://`` URL, compared with grpcio. Each Go case is one ``gokvclient bench`` run per
round, interleaved with the Python cases of `bench.__main__`.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bench import gopeer
from bench._measure import Call, Sample, median_sample
from bench.channels import KEY, REQUEST, VALUE, spawned
from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient, KVServiceClientSync
from plugin_di.rpc.transport import HTTPMode, connect_client, http_client, sync_http_client


def _plain_http_scheme() -> str:
    """``http://`` once it means HTTP/1.1 with pooled keep-alive (issue 14), else the spelling
    of that same lean transport before then."""
    default = inspect.signature(http_client).parameters["http_version"].default
    return "http+h1fast://" if default == HTTPMode.H2 else "http://"


PLAIN_HTTP = _plain_http_scheme()
"""The scheme of every "plain http://" case: the lean HTTP/1.1 transport."""

GO_TO_GO = "Go client -> Go server"
GO_TO_SERVED = "Go client -> plugin-di serve"
CLIENT_TO_GO = "plugin-di client -> Go server"
SYNC_CLIENT_TO_GO = "plugin-di sync client -> Go server"

# Calls per gokvclient run, per second of a Python case's run: about as long as one.
_SEQUENTIAL_CALLS_PER_S = 4_000
_CONCURRENT_CALLS_PER_S = 12_000
_MIN_CALLS = 400

TARGETS = {  # key: (target, what it compares)
    "served_vs_go_seq": (0.9, "Go client: plugin-di serve / Go server, sequential"),
    "served_vs_go_32": (0.5, "Go client: plugin-di serve / Go server, 32 in flight"),
    "client_to_go_vs_go": (0.9, "Go server: plugin-di client / Go client, sequential"),
    "served_http_vs_grpcio": (3.0, "plugin-di client at plain http:// / grpcio, sequential"),
}


@dataclass(frozen=True)
class Peers:
    """The two servers the Go client calls: the Go peer's and a served plugin-di plugin."""

    go_url: str
    served_url: str


@contextlib.asynccontextmanager
async def peers() -> AsyncIterator[Peers]:
    """``gokvserver`` and ``plugin-di serve examples.kv.plugin:plugin --bind 127.0.0.1:0``."""
    async with gopeer.go_server() as go_url, spawned("--bind", "127.0.0.1:0") as line:
        yield Peers(go_url, line.url)


def plain_url(url: str) -> str:
    """``http://host:port`` in the `PLAIN_HTTP` spelling."""
    return PLAIN_HTTP + url.removeprefix("http://")


@contextlib.asynccontextmanager
async def client_call(url: str) -> AsyncIterator[Call]:
    """The generated async KV client on `http_client` for ``url`` at its plain http:// URL."""
    url = plain_url(url)
    async with http_client(url) as http:
        client = connect_client(KVServiceClient, url, http)
        await client.put(pb.PutRequest(key=KEY, value=VALUE))

        async def call() -> object:
            response = await client.get(REQUEST)
            if not response.found:
                raise RuntimeError("benchmark call returned found=false")
            return response

        yield call


@contextlib.asynccontextmanager
async def sync_client_call(url: str) -> AsyncIterator[Call]:
    """The generated sync KV client on `sync_http_client`, at ``url``'s plain http:// URL."""
    url = plain_url(url)
    with sync_http_client(url) as http:
        client = connect_client(KVServiceClientSync, url, http)
        client.put(pb.PutRequest(key=KEY, value=VALUE))

        async def call() -> object:
            return client.get(REQUEST)

        yield call


GoRuns = dict[tuple[str, int], list[Sample]]
"""(case, calls in flight) -> one Sample per round."""


async def go_round(found: Peers, seconds: float, runs: GoRuns) -> None:
    """One round of the Go client's cases: each server sequential, then 32 in flight."""
    for in_flight, per_s in ((1, _SEQUENTIAL_CALLS_PER_S), (32, _CONCURRENT_CALLS_PER_S)):
        calls = max(_MIN_CALLS, int(per_s * seconds))
        for name, url in ((GO_TO_GO, found.go_url), (GO_TO_SERVED, found.served_url)):
            sample = await gopeer.go_client(url, calls, in_flight)
            runs.setdefault((name, in_flight), []).append(sample)


def _ratios(top: list[Sample], bottom: list[Sample]) -> tuple[float, list[float]]:
    """The ratio of the medians, and the per-round ratios (their range is the noise)."""
    ratio = median_sample(top).rate / median_sample(bottom).rate
    return ratio, [t.rate / b.rate for t, b in zip(top, bottom, strict=True)]


def results(
    seq: dict[str, list[Sample]], go: GoRuns | None, served_http: str, grpcio: str
) -> dict[str, Any]:
    """The public edge's keys for results.json, from every round's samples.

    ``seq`` holds the Python cases (``CLIENT_TO_GO`` and ``SYNC_CLIENT_TO_GO`` among them when
    the Go peer ran); ``served_http`` and ``grpcio`` name the cases of the last ratio.
    """
    out: dict[str, Any] = {}
    ranges: dict[str, list[float]] = {}

    def record(key: str, top: list[Sample], bottom: list[Sample]) -> None:
        out[key], per_round = _ratios(top, bottom)
        ranges[key] = [min(per_round), max(per_round)]

    def raw(prefix: str, samples: list[Sample]) -> None:
        median = median_sample(samples)
        out[f"{prefix}_rps"] = median.rate
        out[f"{prefix}_p50_us"] = median.p50_us

    record("served_http_vs_grpcio", seq[served_http], seq[grpcio])
    raw("served_http", seq[served_http])
    out["grpcio_p50_us"] = median_sample(seq[grpcio]).p50_us  # its rate: grpcio_unary_rps
    if go is not None:
        record("served_vs_go_seq", go[(GO_TO_SERVED, 1)], go[(GO_TO_GO, 1)])
        record("served_vs_go_32", go[(GO_TO_SERVED, 32)], go[(GO_TO_GO, 32)])
        best = max((CLIENT_TO_GO, SYNC_CLIENT_TO_GO), key=lambda n: median_sample(seq[n]).rate)
        record("client_to_go_vs_go", seq[best], go[(GO_TO_GO, 1)])
        raw("go_server_seq", go[(GO_TO_GO, 1)])
        raw("go_server_32", go[(GO_TO_GO, 32)])
        raw("served_go_client_seq", go[(GO_TO_SERVED, 1)])
        raw("served_go_client_32", go[(GO_TO_SERVED, 32)])
        raw("client_to_go", seq[best])
        out["client_to_go_async_rps"] = median_sample(seq[CLIENT_TO_GO]).rate
        out["client_to_go_sync_rps"] = median_sample(seq[SYNC_CLIENT_TO_GO]).rate
        out["client_to_go_client"] = "sync" if best == SYNC_CLIENT_TO_GO else "async"
    out["edge_ratio_ranges"] = ranges
    out["edge_scheme"] = PLAIN_HTTP
    return out


def table(values: dict[str, Any], go: GoRuns | None) -> str:
    """The public edge's part of the printed table."""
    lines = [f"{'public edge (Go peer in the same run)':<44}{'calls/s':>10}{'p50 µs':>9}"]
    if go is not None:
        for (name, in_flight), samples in go.items():
            median = median_sample(samples)
            label = f"{name}, {'sequential' if in_flight == 1 else '32 in flight'}"
            lines.append(f"{label:<44}{median.rate:>10,.0f}{median.p50_us:>9.0f}")
    lines.append("")
    for key, (target, what) in TARGETS.items():
        if key not in values:
            lines.append(f"{key:<24} (no Go peer: {what})")
            continue
        low, high = values["edge_ratio_ranges"][key]
        met = "met" if values[key] >= target else "NOT met"
        lines.append(
            f"{key:<24}{values[key]:6.2f}x  rounds {low:.2f}-{high:.2f}  "
            f"target >= {target:g}: {met}  ({what})"
        )
    return "\n".join(lines)
