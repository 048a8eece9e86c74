"""The call paths being compared, each an async context manager yielding one KV ``Get`` call.

Every case calls the same method with the same message: ``Get(key)`` on a
store holding a 64-byte value.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from bench._measure import Call
from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient, KVServiceClientSync
from examples.kv.plugin import make_plugin
from examples.kv.store import KVStore
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.plugin.inprocess import inprocess_client
from plugin_di.rpc.tls import ClientTLS, generate_ephemeral_cert
from plugin_di.rpc.transport import HTTPMode, connect_client, http_client, sync_http_client

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key-000001"
VALUE = b"x" * 64
REQUEST = pb.GetRequest(key=KEY)


def _check(response: pb.GetResponse) -> None:
    if not response.found:
        raise RuntimeError("benchmark call returned found=false")


@contextlib.asynccontextmanager
async def direct_python() -> AsyncIterator[Call]:
    """The implementation's method, called as a plain coroutine."""
    store = KVStore()
    await store.put(pb.PutRequest(key=KEY, value=VALUE), None)  # type: ignore[arg-type]

    async def call() -> object:
        return await store.get(REQUEST, None)  # type: ignore[arg-type]

    yield call


@contextlib.asynccontextmanager
async def in_memory(mode: str) -> AsyncIterator[Call]:
    """An in-memory plugin: direct dispatch or the in-process ASGI path."""
    client = inprocess_client(make_plugin(), KVServiceClient, mode=mode)  # type: ignore[arg-type]
    await client.put(pb.PutRequest(key=KEY, value=VALUE))

    async def call() -> object:
        return await client.get(REQUEST)

    try:
        yield call
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def spawned(
    *serve_args: str, on_pid: Callable[[int], object] | None = None
) -> AsyncIterator[HandshakeLine]:
    """``plugin-di serve examples.kv.plugin:plugin`` in a child process, until the block ends.

    ``on_pid`` is told the child's pid.
    """
    command = [sys.executable, "-m", "plugin_di", "serve", "examples.kv.plugin:plugin", *serve_args]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if on_pid is not None:
        on_pid(process.pid)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        yield HandshakeLine.parse(line.decode())
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def process_plugin(channel: str) -> AsyncIterator[Call]:
    """A KV plugin process called over ``channel``: h2c, plain (HTTP/1.1: the
    `bench.edge.PLAIN_HTTP` spelling of its URL), uds or tls."""
    with tempfile.TemporaryDirectory() as tmp:
        args: list[str] = []
        tls: ClientTLS | None = None
        if channel == "uds":
            args = ["--uds", str(Path(tmp) / "kv.sock")]
        elif channel == "tls":
            pair = generate_ephemeral_cert("kv")
            (Path(tmp) / "cert.pem").write_bytes(pair.cert_pem)
            (Path(tmp) / "key.pem").write_bytes(pair.key_pem)
            args = [
                "--tls-cert",
                str(Path(tmp) / "cert.pem"),
                "--tls-key",
                str(Path(tmp) / "key.pem"),
            ]
            tls = ClientTLS(ca_pem=pair.cert_pem)
        async with spawned(*args) as line:
            url = line.url
            options: dict[str, Any] = {}
            if channel == "tls":
                url = url.replace("http://", "https://")
                options = {"tls": tls, "http_version": HTTPMode.H2}
            elif channel == "plain":
                from bench.edge import plain_url

                url = plain_url(url)
            elif channel == "h2c":
                options = {"http_version": HTTPMode.H2}
            async with http_client(url, **options) as http:
                client = connect_client(KVServiceClient, url, http)
                await client.put(pb.PutRequest(key=KEY, value=VALUE))

                async def call() -> object:
                    return await client.get(REQUEST)

                yield call


@contextlib.asynccontextmanager
async def fast_channel_sync() -> AsyncIterator[Call]:
    """A plugin on a Unix socket called with the generated sync client."""
    with tempfile.TemporaryDirectory() as tmp:
        async with spawned("--uds", str(Path(tmp) / "kv.sock")) as line:
            with sync_http_client(line.url) as http:
                client = connect_client(KVServiceClientSync, line.url, http)
                client.put(pb.PutRequest(key=KEY, value=VALUE))

                async def call() -> object:
                    return client.get(REQUEST)

                yield call


@contextlib.contextmanager
def grpc_stubs() -> Iterator[tuple[str, Any]]:
    """grpcio stubs of the KV service, generated in a temporary directory: (dir, module)."""
    from tools.protogen import generate_grpc_stubs

    with tempfile.TemporaryDirectory() as stubs_dir:
        package = generate_grpc_stubs(Path(stubs_dir))
        sys.path.insert(0, stubs_dir)
        try:
            yield stubs_dir, __import__(f"{package}.kv.v1.kv_pb2_grpc", fromlist=["KVServiceStub"])
        finally:
            sys.path.remove(stubs_dir)


@contextlib.asynccontextmanager
async def _grpcio_stub(target: str, stubs: Any) -> AsyncIterator[Call]:
    import grpc

    async with grpc.aio.insecure_channel(target) as channel:
        stub = stubs.KVServiceStub(channel)
        await stub.Put(pb.PutRequest(key=KEY, value=VALUE))

        async def call() -> object:
            return await stub.Get(REQUEST)

        yield call


@contextlib.asynccontextmanager
async def grpcio_baseline() -> AsyncIterator[Call]:
    """The KV service on a grpc.aio server in its own process, called with a grpc.aio stub."""
    with grpc_stubs() as (stubs_dir, stubs):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.grpcio_server",
            stubs_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            assert process.stdout is not None
            assert process.stdin is not None
            port = int(await asyncio.wait_for(process.stdout.readline(), timeout=30))
            async with _grpcio_stub(f"127.0.0.1:{port}", stubs) as call:
                yield call
        finally:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def grpcio_to_served() -> AsyncIterator[Call]:
    """A served plugin (``plugin-di serve``, TCP) called by a grpc.aio stub: gRPC over h2c."""
    with grpc_stubs() as (_, stubs):
        async with spawned() as line, _grpcio_stub(line.address, stubs) as call:
            yield call


# The host process for the routed cases: a Host with rate limiting off (one caller making as
# many calls as it can) and, with "fast", its fast local channel; prints the URL callers use.
# Its loop is the one App.run and `plugin-di host` pick (Settings.event_loop: uvloop if installed).
_HOST_SCRIPT = """
import asyncio, sys
from plugin_di import eventloop
from bench.host_server import ADMISSION
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from plugin_di.settings import Settings

async def main(fast):
    host = Host(HostConfig(rate_limit=None), local_uds=fast, admission=ADMISSION)
    url = await host.start("127.0.0.1:0")
    print(host.local_url if fast else url, flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await host.stop()

eventloop.run(main(sys.argv[1] == "fast"), Settings().event_loop)
"""


@contextlib.asynccontextmanager
async def routed(channel: str = "fast", event_loop: str = "auto") -> AsyncIterator[Call]:
    """A call routed through a Host process to a KV plugin on the fast channel.

    ``channel="fast"``: the caller reaches the host on its fast local channel (a
    Unix socket, the lean HTTP/1.1 client), as a local plugin given ``host.local_url`` does.
    ``"h2c"``: over HTTP/2 cleartext (pyqwest). Either way the host's router
    forwards to the provider's registered ``unix://`` address. ``event_loop`` is the host
    process's ``PLUGIN_DI_EVENT_LOOP`` (``auto``: uvloop, as `App.run` picks).
    """
    from plugin_di.plugin.host_client import HostClient

    host = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOST_SCRIPT,
        channel,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PLUGIN_DI_EVENT_LOOP": event_loop},
    )
    try:
        assert host.stdout is not None
        host_url = (await asyncio.wait_for(host.stdout.readline(), 30)).decode().strip()
        with tempfile.TemporaryDirectory() as tmp:
            async with (
                spawned("--uds", str(Path(tmp) / "kv.sock")) as line,
                http_client(host_url) as http,
            ):
                provider = HostClient(host_url, http_client=http)
                await provider.handshake("kv", plugins=[make_plugin()])
                await provider.register("kv", "1.0.0", "/kv.v1.KVService/", {"base_url": line.url})
                caller = HostClient(host_url, http_client=http)
                await caller.handshake("app")
                found = await caller.discover("kv")
                client = caller.routed_client(KVServiceClient, found.endpoint)
                await client.put(pb.PutRequest(key=KEY, value=VALUE))

                async def call() -> object:
                    return await client.get(REQUEST)

                yield call
    finally:
        if host.stdin is not None:
            host.stdin.close()
        try:
            await asyncio.wait_for(host.wait(), 10)
        except TimeoutError:
            host.kill()
            await host.wait()
