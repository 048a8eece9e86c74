"""Start plugin processes for tests, read their handshake line, stop them by pid."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyqwest

from plugin_di.plugin.handshake_line import HandshakeLine

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0


@dataclass
class PluginProcess:
    proc: subprocess.Popen[str]
    line: HandshakeLine
    stdout_rest: list[str]

    @property
    def url(self) -> str:
        return self.line.url

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        """All of stderr (only once the process has exited)."""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; never leaves the process behind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def plugin_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("NO_PROXY", "127.0.0.1,localhost")
    env.update(extra or {})
    return env


def spawn(args: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=plugin_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_line(proc: subprocess.Popen[str], timeout: float = STARTUP_TIMEOUT) -> str:
    """The first stdout line, or '' if the process ended or the time ran out."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                return proc.stdout.readline()
            if proc.poll() is not None:
                return ""
    return ""


def start(args: Sequence[str], env: Mapping[str, str] | None = None) -> PluginProcess:
    proc = spawn(args, env)
    raw = read_line(proc)
    if not raw:
        proc.kill()
        proc.wait(5)
        assert proc.stderr is not None
        raise AssertionError(f"plugin printed no handshake line; stderr:\n{proc.stderr.read()}")
    return PluginProcess(proc, HandshakeLine.parse(raw), [])


@contextlib.contextmanager
def running(args: Sequence[str], env: Mapping[str, str] | None = None) -> Iterator[PluginProcess]:
    plugin = start(args, env)
    try:
        yield plugin
    finally:
        plugin.stop()


SERVE_KV = ["-m", "plugin_di.cli", "serve", "examples.kv.plugin:plugin"]


@contextlib.asynccontextmanager
async def http_client(version: str) -> AsyncIterator[pyqwest.Client]:
    """A pyqwest client speaking h2c ('h2') or HTTP/1.1 ('h1'), closed properly afterwards."""
    http_version = pyqwest.HTTPVersion.HTTP2 if version == "h2" else pyqwest.HTTPVersion.HTTP1
    transport = pyqwest.HTTPTransport(http_version=http_version)
    try:
        yield pyqwest.Client(transport)
    finally:
        await transport.aclose()
        # pyqwest's tokio threads need a tick before the loop ends (exit code 134 otherwise)
        import asyncio

        await asyncio.sleep(0.05)
