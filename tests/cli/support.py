"""Helpers of the CLI tests: run ``plugin-di`` in a worker thread, find a closed port."""

from __future__ import annotations

import asyncio
import socket

import pytest

from plugin_di.cli import main


async def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``plugin-di ARGS`` in a worker thread (its client blocks) while the loop serves."""
    code = await asyncio.wait_for(asyncio.to_thread(main, list(args)), 30)
    out, err = capsys.readouterr()
    return code, out, err


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
