"""Interop tests: standard clients (grpcio, buf curl, plain HTTP) against a served plugin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import PluginProcess, running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def kv_process() -> Iterator[PluginProcess]:
    """The KV example served by ``plugin-di serve`` for the whole interop package."""
    with running(["-m", "plugin_di.cli", "serve", "examples.kv.plugin:plugin"]) as plugin:
        yield plugin


@pytest.fixture(scope="package")
def probe_process() -> Iterator[PluginProcess]:
    """A KV whose Watch sends three events and ends (for clients that wait for the end)."""
    with running(["-m", "plugin_di.cli", "serve", "tests.support.probe:served"]) as plugin:
        yield plugin
