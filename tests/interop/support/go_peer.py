"""Run connect-plugin-go's own binaries (``../shared/go-peer/bin``) for interop tests.

Every process binds 127.0.0.1, is stopped by its pid (SIGTERM, then SIGKILL) and has its
output read by a thread, so waits are bounded. ``gokvserver`` prints the address it was
given, not the one bound, so its port (from ``-addr 127.0.0.1:0``) is read from
``/proc``; when it self-registers, its ``base_url`` must be known before it starts, so a
free port is picked for it instead.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import ROOT


def _go_peer() -> Path:
    """``$PLUGIN_DI_GO_PEER``, else ``../shared/go-peer`` from the project root (or from the
    folder above it, for a git worktree kept one level deeper)."""
    override = os.environ.get("PLUGIN_DI_GO_PEER")
    if override:
        return Path(override)
    candidates = [ROOT.parent / "shared" / "go-peer", ROOT.parent.parent / "shared" / "go-peer"]
    return next((path for path in candidates if path.is_dir()), candidates[0])


GO_PEER = _go_peer()
BIN = GO_PEER / "bin"
START_TIMEOUT = 10.0
CLIENT_TIMEOUT = 40.0  # gokvclient's own deadline is 30 s


def go_binary(name: str) -> Path:
    """The path of a Go peer binary; skips the test when the Go peer is not there."""
    path = BIN / name
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.skip(f"the Go peer (connect-plugin-go binaries) is not at {BIN}: {name} missing")
    if not sys.platform.startswith("linux"):
        pytest.skip("the Go peer binaries are built for linux/amd64")
    return path


def go_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["CONNECTPLUGIN_DISABLE_TLS_WARNING"] = "1"
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra or {})
    return env


@dataclass
class Running:
    """A started process whose stdout lines arrive in ``lines`` (read by a thread)."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def wait_line(self, prefix: str, timeout: float = START_TIMEOUT) -> str:
        """The first stdout line starting with ``prefix`` (others are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} line from {self.proc.args}; got {self.seen}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _pump(stream: object, lines: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        lines.put(line.rstrip("\n"))


@contextlib.contextmanager
def running(
    args: Sequence[str], env: Mapping[str, str] | None = None, *, stderr_to_stdout: bool = False
) -> Iterator[Running]:
    """Start ``args`` (cwd: the project root); stop it by pid when the block ends."""
    proc = subprocess.Popen(
        list(args),
        cwd=ROOT,
        env=go_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if stderr_to_stdout else subprocess.DEVNULL,
        text=True,
    )
    run = Running(proc)
    threading.Thread(target=_pump, args=(proc.stdout, run.lines), daemon=True).start()
    try:
        yield run
    finally:
        run.stop()
        if proc.stdout is not None:
            proc.stdout.close()


def listening_port(pid: int, timeout: float = START_TIMEOUT) -> int:
    """The TCP port ``pid`` listens on (read from /proc once it listens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inodes = set()
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                return int(fields[1].rsplit(":", 1)[1], 16)
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not listen within {timeout} s")


def free_port() -> int:
    """A port free on 127.0.0.1 now (for a process that must know its URL before it starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def go_kv_server(*extra: str, port: int = 0) -> Iterator[tuple[Running, str]]:
    """``gokvserver`` on 127.0.0.1 (port 0 unless given); yields it and its URL."""
    args = [str(go_binary("gokvserver")), "-addr", f"127.0.0.1:{port}", *extra]
    with running(args) as server:
        server.wait_line("GOKV_SERVING")
        if port:
            wait_listening(port)
        else:
            port = listening_port(server.proc.pid)
        yield server, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def go_host() -> Iterator[str]:
    """connect-plugin-go's host platform (``gohost``); yields its URL."""
    with running([str(go_binary("gohost")), "-addr", "127.0.0.1:0"]) as host:
        line = host.wait_line("GOHOST_LISTENING")
        yield line.split()[1]


@dataclass
class ClientRun:
    returncode: int
    lines: list[str]

    @property
    def failures(self) -> list[str]:
        return [line for line in self.lines if line.startswith("FAIL")]

    def ok(self, text: str) -> bool:
        """Whether an ``OK`` line contains ``text``."""
        return any(line.startswith("OK") and text in line for line in self.lines)


def go_kv_client(*args: str) -> ClientRun:
    """Run ``gokvclient`` to its end (bounded); its stdout lines."""
    done = subprocess.run(
        [str(go_binary("gokvclient")), *args],
        cwd=ROOT,
        env=go_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    return ClientRun(done.returncode, done.stdout.splitlines())
