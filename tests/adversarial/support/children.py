"""Servers under attack in child processes: a crash is then a finding, not the test run's end.

`plugin_child` serves the KV example with ``plugin-di serve`` (on loopback TCP, or on a Unix
socket); `host_child` serves a Host (``python -m
tests.adversarial.host_child``). Each yields a `Child`: its `Surface`, its process and the
file its stderr goes to (a pipe nobody reads would fill and stall a server that logs a lot).
Children are stopped by their pid: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plugin_di.plugin.handshake_line import HandshakeLine
from tests.support.processes import ROOT, read_line

from .servers import HOST_VALID, PLUGIN_VALID, Surface


@dataclass
class Child:
    """A server in a child process."""

    surface: Surface
    proc: subprocess.Popen[str]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def died(self) -> str:
        """How it ended ('' while it runs), with the end of its log."""
        code = self.proc.poll()
        if code is None:
            return ""
        return f"exited with {code}; {self.log_tail()}"

    def log_tail(self, chars: int = 2000) -> str:
        """The end of its log (where a server's tracebacks go)."""
        return f"{self.surface.name}'s log ends:\n" + self.log.read_text(errors="replace")[-chars:]


@contextlib.contextmanager
def _spawned(
    args: Sequence[str], env: Mapping[str, str], log: Path
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        line = read_line(proc, 30.0)
        if not line:
            raise AssertionError(f"{args} printed nothing; its log:\n{log.read_text()}")
        yield proc, line
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # a host child ends on end of file
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def plugin_child(kind: str, max_message_bytes: int) -> Iterator[Child]:
    """The KV example served by ``kind`` in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["-m", "plugin_di.cli", "serve", "examples.kv.plugin:plugin"]
        if kind == "unix":
            args += ["--uds", str(Path(tmp) / "kv.sock")]
        env = {"PLUGIN_DI_MAX_MESSAGE_BYTES": str(max_message_bytes)}
        log = Path(tmp) / "stderr.log"
        with _spawned(args, env, log) as (proc, line):
            url = HandshakeLine.parse(line).url
            yield Child(Surface(f"plugin/{kind}", url, kind, True, PLUGIN_VALID), proc, log)


@contextlib.contextmanager
def host_child(kind: str, max_message_bytes: int) -> Iterator[Child]:
    """A Host served by ``kind`` in a child process (rate limits off)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["-m", "tests.adversarial.host_child", kind, str(max_message_bytes)]
        log = Path(tmp) / "stderr.log"
        with _spawned(args, {}, log) as (proc, line):
            url = line.strip()
            surface = Surface(f"host/{kind}", url, kind, True, HOST_VALID)
            yield Child(surface, proc, log)
