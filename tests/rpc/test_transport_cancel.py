"""Cancelling the task that iterates a process plugin's server stream ends the call at once,
on every transport, and the plugin sees the stream end (issue 13, item 8).

The plugin is a real process (``plugin-di serve tests.rpc.watch_probe:plugin``) that counts
its open and ended Watch streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from connectrpc.errors import ConnectError

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from plugin_di.rpc.transport import connect_client, http_client
from tests.support.processes import PluginProcess, running

ROOT = Path(__file__).resolve().parents[2]

SERVE_PROBE = ["-m", "plugin_di.cli", "serve", "tests.rpc.watch_probe:plugin"]
ENDS_WITHIN = 2.0  # seconds a cancelled consumer may take to end: "at once", with slack
POLLS = 400  # calls at most while waiting for the plugin to notice (no sleeping)


@pytest.fixture(scope="module")
def tcp_probe() -> Iterator[PluginProcess]:
    with running(SERVE_PROBE) as process:
        yield process


@pytest.fixture(scope="module")
def uds_probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginProcess]:
    path = tmp_path_factory.mktemp("probe") / "p.sock"
    with running([*SERVE_PROBE, "--uds", str(path)]) as process:
        yield process


async def _counts(kv: KVServiceClient) -> dict[str, int]:
    keys = (await kv.list(pb.ListRequest())).keys
    return {name: int(value) for name, _, value in (key.partition("=") for key in keys)}


async def _cancel_and_wait(consumer: asyncio.Task[Any]) -> None:
    """Cancel ``consumer``; it must end within `ENDS_WITHIN` (cancelled, or with CANCELED)."""
    consumer.cancel()
    async with asyncio.timeout(ENDS_WITHIN):
        with contextlib.suppress(asyncio.CancelledError, ConnectError):
            await consumer


async def _plugin_saw_the_end(kv: KVServiceClient, ended_before: int) -> None:
    for _ in range(POLLS):
        counts = await _counts(kv)
        if counts["ended"] > ended_before:
            assert counts["active"] == 0
            return
    raise AssertionError(f"the plugin still serves the cancelled stream: {counts}")


@pytest.mark.parametrize(
    ("where", "http_version"),
    [("tcp", "auto"), ("tcp", "http1"), ("tcp", "h2"), ("uds", "auto")],
)
async def test_cancelling_a_stream_consumer_ends_the_call_at_once(
    tcp_probe: PluginProcess, uds_probe: PluginProcess, where: str, http_version: str
) -> None:
    url = (tcp_probe if where == "tcp" else uds_probe).url
    async with http_client(url, http_version=http_version) as http:
        kv = connect_client(KVServiceClient, url, http)
        ended_before = (await _counts(kv))["ended"]
        events: list[str] = []
        flowing = asyncio.Event()

        async def consume() -> None:
            async for event in kv.watch(pb.WatchRequest(prefix="")):
                events.append(event.key)
                flowing.set()

        consumer = asyncio.create_task(consume())
        async with asyncio.timeout(5):
            await flowing.wait()
        await kv.put(pb.PutRequest(key="one", value=b"1"))
        async with asyncio.timeout(5):
            while len(events) < 2:
                flowing.clear()
                await flowing.wait()
        await _cancel_and_wait(consumer)
        await _plugin_saw_the_end(kv, ended_before)
        assert events == ["_watch_started", "one"]


async def test_a_cancellation_landing_as_the_connection_opens_is_not_lost(
    tcp_probe: PluginProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's ``asyncio.wait_for`` drops a cancellation that arrives as what it waits
    for completes; a stream whose dial swallowed it went on for ever."""
    url = tcp_probe.url
    loop = asyncio.get_running_loop()
    opened = loop.create_connection
    consumer: asyncio.Task[Any] | None = None
    events: list[str] = []

    async def open_then_cancel(*args: Any, **kwargs: Any) -> Any:
        connection = await opened(*args, **kwargs)
        if consumer is not None and not consumer.done():
            consumer.cancel()  # the consumer is cancelled just as its connection opens
        return connection

    # A fresh client: no pooled connection, so the stream must dial.
    async with http_client(url) as probe_http, http_client(url) as http:
        kv = connect_client(KVServiceClient, url, http)
        monkeypatch.setattr(loop, "create_connection", open_then_cancel)

        async def consume() -> None:
            async for event in kv.watch(pb.WatchRequest(prefix="")):
                events.append(event.key)

        consumer = asyncio.create_task(consume())
        try:
            async with asyncio.timeout(ENDS_WITHIN):
                with contextlib.suppress(asyncio.CancelledError, ConnectError):
                    await consumer
        finally:
            if not consumer.done():  # the bug: still streaming; end it for the next tests
                consumer.cancel()
                with contextlib.suppress(BaseException):
                    await consumer
            monkeypatch.undo()
        probe = connect_client(KVServiceClient, url, probe_http)
        for _ in range(POLLS):  # whatever reached the plugin was closed, not left streaming
            if (await _counts(probe))["active"] == 0:
                break
        assert (await _counts(probe))["active"] == 0
    assert events == []
