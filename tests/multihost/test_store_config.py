"""Choosing the store: URLs, Settings, and `plugin-di host --store` refusing what it cannot use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from plugin_di.host.server import Host
from plugin_di.host.shared.config import MEMORY_URL, StoreConfig, StoreConfigError
from plugin_di.host.store import InMemoryStore
from plugin_di.settings import Settings
from tests.multihost.support.processes import ROOT
from tests.multihost.support.redis import free_port


def test_memory_is_the_default_and_needs_no_client() -> None:
    config = StoreConfig.from_settings(Settings())
    assert config.url == MEMORY_URL
    assert not config.shared
    host = Host.from_settings(Settings())
    assert host.shared is None
    assert isinstance(host.registry.store, InMemoryStore)


def test_settings_name_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGIN_DI_STORE", "redis://10.0.0.5:6379/2")
    monkeypatch.setenv("PLUGIN_DI_LEASE_TTL", "12")
    config = StoreConfig.from_settings(Settings())
    assert (config.url, config.lease_ttl, config.shared) == ("redis://10.0.0.5:6379/2", 12, True)
    assert StoreConfig.from_settings(Settings(), "memory://").url == MEMORY_URL  # --store wins


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("etcd://127.0.0.1:2379", "etcd is not supported"),
        ("mysql://x", "expected memory://"),
        ("redis://", "name the Redis host"),
    ],
)
def test_unusable_store_urls_say_what_to_write(url: str, says: str) -> None:
    with pytest.raises(StoreConfigError, match=says):
        StoreConfig(url=url)


def _host(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugin_di", "host", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_the_host_refuses_an_etcd_url() -> None:
    done = _host("--store", "etcd://127.0.0.1:2379")
    assert done.returncode == 2
    assert "etcd is not supported" in done.stderr


def test_the_host_stops_when_its_store_cannot_be_reached() -> None:
    port = free_port()  # nothing listens there
    done = _host("--store", f"redis://127.0.0.1:{port}/0")
    assert done.returncode == 1
    assert f"shared store redis://127.0.0.1:{port}/0" in done.stderr
    assert done.stdout == ""  # no handshake line: the host never served
