"""Real processes for the fault tests: `plugin-di host` on a store, `plugin-di serve` plugins.

Each writes its stderr to a file (read it with `log()`), and is stopped by its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from connectrpc.errors import ConnectError

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.plugin.host_client import HostClient
from tests.support.processes import ROOT

ALLOW = ["--allow", "app=", "--allow", "kv=kv", "--allow", "logger=logger"]
_LINE_TIMEOUT = 30.0


class Proc:
    """One child process; its first stdout line is a handshake line."""

    def __init__(self, args: list[str], log_file: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log_file = log_file
        self.env = {**os.environ, **(env or {})}
        self.popen: subprocess.Popen[str] | None = None
        self.first_line = ""
        self.start()

    def start(self) -> None:
        with self.log_file.open("a") as err:
            self.popen = subprocess.Popen(
                [sys.executable, *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.popen.stdout is not None
        deadline = time.monotonic() + _LINE_TIMEOUT
        line = ""
        while not line and time.monotonic() < deadline and self.popen.poll() is None:
            line = self.popen.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"{self.args} printed no handshake line: {self.log()[-3000:]}")
        self.first_line = line

    @property
    def url(self) -> str:
        return HandshakeLine.parse(self.first_line).url

    @property
    def address(self) -> str:
        return self.url.split("://", 1)[1]

    def keep_address(self) -> None:
        """Make a later `start` listen where this process listens now (a restart)."""
        self.args[self.args.index("--bind") + 1] = self.address

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        popen, self.popen = self.popen, None
        if popen is None:
            return None
        if popen.poll() is None:
            os.kill(popen.pid, sig)
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(popen.pid, signal.SIGKILL)
            popen.wait(timeout=5)
        if popen.stdout is not None:
            popen.stdout.close()
        return popen.returncode


def host_proc(tmp: Path, name: str, store: str, bind: str = "127.0.0.1:0",
              env: dict[str, str] | None = None) -> Proc:  # fmt: skip
    """``plugin-di host`` on ``store`` (the allow-list admits app, kv and logger)."""
    return Proc(
        ["-m", "plugin_di", "host", "--bind", bind, "--store", store, *ALLOW],
        tmp / f"{name}.log",
        env,
    )


def kv_proc(tmp: Path, name: str, host_urls: str, env: dict[str, str] | None = None) -> Proc:
    """The KV example plugin, joining the hosts ``host_urls`` (comma-separated)."""
    return Proc(
        ["-m", "plugin_di", "serve", "examples.kv.plugin:plugin"],
        tmp / f"{name}.log",
        {"PLUGIN_DI_HOST_URL": host_urls, **(env or {})},
    )


async def routed_put(client: HostClient, key: str) -> str:
    """Discover kv through ``client``'s host and Put through its router; the provider id."""
    found = await client.discover("kv")
    kv = client.routed_client(KVServiceClient, found.endpoint)
    await kv.put(kv_pb2.PutRequest(key=key, value=b"v"), timeout_ms=2000)
    return found.endpoint.provider_id


async def routes(client: HostClient) -> bool:
    """Whether a routed call to kv through ``client``'s host works now."""
    try:
        await routed_put(client, "probe")
    except ConnectError:
        return False
    return True
