"""A stand-in plugin process for launcher tests: ``python fake_plugin.py MODE [ARG]``.

Modes: ``serve`` (handshake on a bound 127.0.0.1:0 socket, then wait), ``silent``
(never prints the handshake line), ``crash`` (exit 3 after stderr output),
``json`` (handshake, then JSON log lines), ``stubborn`` (ignores SIGTERM),
``die`` (exit 1 after the handshake),
``stall`` (ignores SIGTERM; its parent-death handler never finishes). Every mode that waits
runs the real parent watcher; ``on_death`` touches the file named by
FAKE_PLUGIN_MARK (if set) before exiting.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time

from plugin_di.plugin.handshake_line import HandshakeLine
from plugin_di.plugin.parent_watch import watch_parent

MODE = sys.argv[1]
stop = threading.Event()


def mark(text: str) -> None:
    path = os.environ.get("FAKE_PLUGIN_MARK")
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


def on_death() -> None:
    mark("parent-died")
    if MODE == "stall":
        time.sleep(60)
    stop.set()


def on_term(signum: int, frame: object) -> None:
    mark("sigterm")
    stop.set()


if MODE == "crash":
    print("loading config", file=sys.stderr)
    print("fatal: config file missing", file=sys.stderr, flush=True)
    sys.exit(3)

print("booting", file=sys.stderr, flush=True)
if MODE == "silent":
    time.sleep(60)
    sys.exit(0)

signal.signal(signal.SIGTERM, signal.SIG_IGN if MODE in ("stubborn", "stall") else on_term)
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
host, port = listener.getsockname()
watch_parent(on_death)
app_version = int(os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "1").split(",")[-1])
print(HandshakeLine(1, app_version, "tcp", f"{host}:{port}").format(), flush=True)
if MODE == "die":
    print("dying right after the handshake", file=sys.stderr, flush=True)
    sys.exit(1)
if MODE == "json":
    for level in ("debug", "warn", "error"):
        record = {"@level": level, "@message": f"{level} line", "key": level.upper()}
        print(json.dumps(record), file=sys.stderr, flush=True)
    print("plain stdout line", flush=True)
    print("done-logging", file=sys.stderr, flush=True)
stop.wait(60)
mark("exiting")
sys.exit(0)
