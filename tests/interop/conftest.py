"""Interop tests: standard clients (grpcio, buf curl, plain HTTP) against a served plugin."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from plugin.procs import PluginProcess, running  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture(scope="package")
def kv_process() -> Iterator[PluginProcess]:
    """The KV example served by ``plugin-di serve`` for the whole interop package."""
    with running(["-m", "plugin_di.cli", "serve", "examples.kv.plugin:plugin"]) as plugin:
        yield plugin


@pytest.fixture(scope="package")
def probe_process() -> Iterator[PluginProcess]:
    """A KV whose Watch sends three events and ends (for clients that wait for the end)."""
    with running(["-m", "plugin_di.cli", "serve", "tests.plugin.support:served"]) as plugin:
        yield plugin
