"""A plugin the app launches is admitted to its in-process host by its launch secret."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from dependency_injector import containers, providers

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin
from plugin_di.gen.connectplugin.v1 import registry_pb2
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from plugin_di.launch.process import LaunchConfig, PluginProcess
from plugin_di.plugin import env
from tests.launch.support import fake_command

ROOT = Path(__file__).resolve().parents[2]


class RecordingAdmission:
    """A `LaunchAdmission` that remembers what was expected and forgotten."""

    def __init__(self) -> None:
        self.expected: dict[str, tuple[str, tuple[str, ...]]] = {}

    def expect_launch(
        self, secret: str, self_id: str, provides: Iterable[str]
    ) -> Callable[[], None]:
        self.expected[secret] = (self_id, tuple(provides))
        return lambda: self.expected.pop(secret)


def _config(**kw: object) -> LaunchConfig:
    return LaunchConfig(name="fake", command=fake_command("serve"), **kw)  # type: ignore[arg-type]


async def test_each_launch_registers_its_secret_and_withdraws_it_at_exit() -> None:
    admission = RecordingAdmission()
    proc = PluginProcess(
        _config(host_url="http://127.0.0.1:9", admission=admission, provides=("kv",))
    )
    await proc.start()
    try:
        assert admission.expected == {proc.secret: ("fake", ("kv",))}
        assert proc.child_env()[env.JOIN_TOKEN] == proc.secret
    finally:
        await proc.stop()
    assert admission.expected == {}


def test_an_operator_join_token_is_sent_instead_of_the_secret() -> None:
    admission = RecordingAdmission()
    proc = PluginProcess(
        _config(host_url="http://10.0.0.5:8080", admission=admission, join_token="pdj1.a.b")
    )
    assert proc.child_env()[env.JOIN_TOKEN] == "pdj1.a.b"
    remote = PluginProcess(_config(host_url="http://10.0.0.5:8080", join_token="pdj1.a.b"))
    assert remote.child_env()[env.JOIN_TOKEN] == "pdj1.a.b"
    bare = PluginProcess(_config(host_url="http://10.0.0.5:8080", inherit_env=False))
    assert env.JOIN_TOKEN not in bare.child_env()


async def _wait_available(host: Host, service_type: str) -> registry_pb2.WatchServiceEvent:
    watcher = host.registry.watch(service_type)
    try:
        async with asyncio.timeout(20):
            async for event in watcher:
                if event.state == registry_pb2.SERVICE_STATE_AVAILABLE:
                    return event
    finally:
        watcher.close()
    raise AssertionError("the watch ended")


async def test_an_app_launched_plugin_joins_its_host_by_its_launch_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="plugin_di.host")

    class Container(containers.DeclarativeContainer):
        host = providers.Singleton(Host, HostConfig(sweep_interval=1e9), bind="127.0.0.1:0")
        kv = ProcessPlugin(make_plugin(), module="examples.kv", cwd=str(ROOT), host=host)

    app = App(Container)
    await app.start()
    try:
        host: Host = app.container.host()
        event = await _wait_available(host, "kv")
        runtime_id = event.endpoint.provider_id
        record = host.registry.store.get_plugin(runtime_id)
        assert record is not None
        assert record.self_id == "kv"
        assert host.registry.store.allowed(runtime_id) == {"kv"}
        assert re.search(rf"admitted {runtime_id} by launch secret, may provide kv", caplog.text), (
            caplog.text
        )
        assert len(host.admission._launches) == 1
        kv = app.container.kv().client(KVServiceClient)
        await kv.put(kv_pb2.PutRequest(key="k", value=b"v"))
    finally:
        await app.stop()
    assert host.admission._launches == {}  # the secret admits nobody once the plugin is gone
