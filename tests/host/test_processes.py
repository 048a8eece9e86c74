"""Multi-process, self-registering (9.24 #15): a standalone host, cache and logger processes.

The host admits them by join tokens signed with its admission key (--admission-key-file).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from plugin_di.clock import WALL_CLOCK
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.gen.capability.logger.v1.logger_pb2 import LogRequest
from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.host import join_tokens
from plugin_di.plugin.env import HOST_URL, JOIN_TOKEN
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.plugin.host_client import HostClient
from tests.support.host import NO_GZIP, h2_client

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.popen.stdout is not None
        self.first_line = self.popen.stdout.readline()

    @property
    def url(self) -> str:
        return HandshakeLine.parse(self.first_line).url

    def stop(self) -> tuple[int, str]:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            _, err = self.popen.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            _, err = self.popen.communicate(timeout=5)
        return self.popen.returncode, err


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return join_tokens.create_key_file(tmp_path / "admission.key")


def _token(key_file: Path, self_id: str, provides: str = "") -> str:
    key = join_tokens.load_keys(key_file)[0]
    types = [t for t in provides.split(",") if t]
    return join_tokens.issue(key, self_id, types, ttl=600, now=WALL_CLOCK.now())


def _cli_token(key_file: Path, self_id: str, provides: str) -> str:
    """A join token from the operator's command line."""
    issued = subprocess.run(
        [sys.executable, "-m", "plugin_di", "join-token", "--key-file", str(key_file),
         "--self-id", self_id, "--provides", provides, "--ttl", "600"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return issued.stdout.strip()


def _host(key_file: Path) -> Proc:
    return Proc(["-m", "plugin_di", "host", "--admission-key-file", str(key_file)])


async def _next_state(stream: object) -> int:
    async with asyncio.timeout(10):
        event: registry_pb2.WatchServiceEvent = await anext(stream)  # type: ignore[call-overload]
    return event.state


async def test_cache_first_degraded_then_healthy_when_logger_arrives(
    procs: list[Proc], key_file: Path
) -> None:
    host = _host(key_file)
    procs.append(host)
    assert re.fullmatch(r"1\|1\|tcp\|127\.0\.0\.1:\d+\|connect\|\n", host.first_line)
    env = {HOST_URL: host.url}
    async with h2_client() as http:
        observer = HostClient(host.url, http_client=http)
        await observer.handshake("observer", join_token=_token(key_file, "observer"))
        watch = observer.watch("cache")
        assert await _next_state(watch) == registry_pb2.SERVICE_STATE_UNAVAILABLE

        procs.append(
            Proc(["-m", "examples.cache"], {**env, JOIN_TOKEN: _token(key_file, "cache", "cache")})
        )
        # registered, then reported DEGRADED (no logger yet)
        states = [await _next_state(watch), await _next_state(watch)]
        assert states[-1] == registry_pb2.SERVICE_STATE_DEGRADED

        logger = Proc(
            ["-m", "tests.host.proc_logger"],
            {**env, JOIN_TOKEN: _token(key_file, "logger", "logger")},
        )
        procs.append(logger)
        assert await _next_state(watch) == registry_pb2.SERVICE_STATE_AVAILABLE

        found = await observer.discover("cache")
        cache = observer.routed_client(KVServiceClient, found.endpoint)
        await cache.put(kv_pb2.PutRequest(key="k1", value=b"v"), timeout_ms=5000)
        got = await cache.get(kv_pb2.GetRequest(key="k1"), timeout_ms=5000)
        assert got.value == b"v"
        code, err = logger.stop()  # the logger leaves: the cache is told and degrades
        assert await _next_state(watch) == registry_pb2.SERVICE_STATE_DEGRADED
        await watch.aclose()  # type: ignore[attr-defined]
    assert code == 0
    assert "[info] cache write key=k1" in err
    assert code == 0


async def _until_state(stream: object, state: int) -> None:
    for _ in range(5):  # a registration and the first health report may both be published
        if await _next_state(stream) == state:
            return
    raise AssertionError(f"no watch event with state {state} in 5 events")


async def test_plugin_di_serve_joins_the_host_and_leaves_on_sigterm(
    procs: list[Proc], key_file: Path
) -> None:
    host = _host(key_file)
    procs.append(host)
    issued = _cli_token(key_file, "logger", "logger")
    async with h2_client() as http:
        observer = HostClient(host.url, http_client=http)
        await observer.handshake("observer", join_token=_token(key_file, "observer"))
        watch = observer.watch("logger")
        assert await _next_state(watch) == registry_pb2.SERVICE_STATE_UNAVAILABLE

        # plain serve(), no host code in the plugin: PLUGIN_DI_HOST_URL makes it join,
        # admitted by PLUGIN_DI_JOIN_TOKEN
        logger = Proc(["-m", "plugin_di", "serve", "examples.logger.plugin:plugin"],
                      {HOST_URL: host.url, JOIN_TOKEN: issued})  # fmt: skip
        procs.append(logger)
        await _until_state(watch, registry_pb2.SERVICE_STATE_AVAILABLE)
        found = await observer.discover("logger")
        assert found.endpoint.provider_id.startswith("logger-")
        routed = observer.routed_client(LoggerClient, found.endpoint)
        await routed.log(LogRequest(level="info", message="through the router"), timeout_ms=5000)

        code, err = logger.stop()  # a graceful stop leaves the host: watchers see it go
        await _until_state(watch, registry_pb2.SERVICE_STATE_UNAVAILABLE)
        await watch.aclose()  # type: ignore[attr-defined]
    assert code == 0, err
    assert f"joined the host at {host.url} as {found.endpoint.provider_id}" in err
    assert "[info] through the router" in err
    _, host_log = host.stop()
    assert re.search(rf"admitted {found.endpoint.provider_id} by join token [0-9a-f]{{16}}, "
                     "may provide logger", host_log), host_log  # fmt: skip


async def test_serve_keeps_serving_when_the_host_cannot_be_joined(procs: list[Proc]) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
        logger = Proc(["-m", "plugin_di", "serve", "examples.logger.plugin:plugin"],
                      {HOST_URL: nowhere})  # fmt: skip
        procs.append(logger)
        async with h2_client() as http:
            direct = LoggerClient(logger.url, http_client=http, **NO_GZIP)
            await direct.log(LogRequest(level="info", message="still serving"), timeout_ms=5000)
        code, err = logger.stop()
    assert code == 0, err
    assert f"joining the host at {nowhere} failed" in err
    assert "[info] still serving" in err
