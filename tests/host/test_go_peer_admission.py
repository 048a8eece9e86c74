"""A connect-plugin-go plugin (the real Go peer) joins a default ``plugin-di host`` only once
an ``--allow`` entry admits its self_id; without one its handshake is refused. And the join
token a plugin-di plugin sends does not stop it from joining connect-plugin-go's own host.

The Go peer is ``../shared/go-peer`` from the project root (``GO_PEER_DIR`` overrides it);
the test is skipped when it is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.plugin.host_client import HostClient
from plugin_di.rpc.transport import http_client
from tests.support.host import h2_client

ROOT = Path(__file__).resolve().parents[2]
GO_PEER = Path(os.environ.get("GO_PEER_DIR") or ROOT.parent / "shared" / "go-peer")
GOKVSERVER = GO_PEER / "bin" / "gokvserver"
GOHOST = GO_PEER / "bin" / "gohost"

pytestmark = pytest.mark.skipif(
    not os.access(GOKVSERVER, os.X_OK),
    reason=f"the Go peer is not at {GO_PEER} (set GO_PEER_DIR to its folder)",
)


@contextlib.asynccontextmanager
async def _process(*argv: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env={**os.environ, "CONNECTPLUGIN_DISABLE_TLS_WARNING": "1"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _free_loopback_port() -> int:
    # gokvserver dials its own -addr before registering, so it needs the real port up front
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _lines_until(proc: asyncio.subprocess.Process, *markers: str) -> list[str]:
    """Stdout lines up to the first that starts with one of ``markers`` (or the end)."""
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while raw := await proc.stdout.readline():
            lines.append(raw.decode().strip())
            if lines[-1].startswith(markers):
                break
    return lines


async def _gokv(host_url: str, self_id: str) -> tuple[list[str], str, int | None]:
    """Run gokvserver self-registering as ``self_id``: its stdout, stderr and exit code."""
    addr = f"127.0.0.1:{_free_loopback_port()}"
    argv = (str(GOKVSERVER), "-addr", addr, "-host-url", host_url, "-self-id", self_id,
            "-base-url", f"http://{addr}")  # fmt: skip
    async with _process(*argv) as go:
        lines = await _lines_until(go, "GOKV_REGISTERED", "GOKV_REGISTER_FAIL")
        if not any(line.startswith("GOKV_REGISTERED") for line in lines):
            async with asyncio.timeout(15):
                await go.wait()
        code = go.returncode
    assert go.stderr is not None
    err = (await go.stderr.read()).decode()
    return lines, err, code


async def test_a_go_plugin_registers_only_with_an_allow_list_entry() -> None:
    argv = (sys.executable, "-m", "plugin_di", "host", "--allow", "gokv=kv", "--allow", "observer=")
    async with _process(*argv) as host:
        assert host.stdout is not None
        async with asyncio.timeout(30):
            url = HandshakeLine.parse((await host.stdout.readline()).decode().strip()).url

        lines, err, code = await _gokv(url, "intruder")  # no entry: refused at the handshake
        assert code != 0
        assert not any(line.startswith(("GOKV_HANDSHAKE", "GOKV_REGISTERED")) for line in lines)
        assert "GOKV_FAIL connect to host" in err
        assert "plugin 'intruder' is not admitted" in err

        lines, err, code = await _gokv(url, "gokv")
        assert lines[-1].startswith("GOKV_REGISTERED registration_id=reg-"), (lines, err)
        assert any(line.startswith("GOKV_HANDSHAKE runtime_id=gokv-") for line in lines)
        assert code is None  # still serving when stopped

        async with h2_client() as http:
            observer = HostClient(url, http_client=http)
            await observer.handshake("observer")
            found = await observer.discover("kv")
            assert found.endpoint.provider_id.startswith("gokv-")
    assert host.stderr is not None
    host_log = (await host.stderr.read()).decode()
    assert "handshake refused" in host_log
    assert "plugin 'intruder' is not admitted" in host_log
    assert "by allow-list, may provide kv" in host_log


async def test_a_join_token_does_not_break_the_handshake_with_a_go_host() -> None:
    async with _process(str(GOHOST), "-addr", "127.0.0.1:0") as gohost:
        lines = await _lines_until(gohost, "GOHOST_LISTENING")
        url = lines[-1].split()[-1]  # Go serves HTTP/1.1, what http:// speaks
        async with http_client(url) as http:
            client = HostClient(url, http_client=http)
            identity = await client.handshake("kv", join_token="pdj1.claims.signature")
            assert identity.runtime_id.startswith("kv-")
            registration = await client.register("kv", "1.0.0", "/kv.v1.KVService/")
            assert registration
