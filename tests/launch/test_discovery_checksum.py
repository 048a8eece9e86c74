"""Entry-point discovery of installed plugins, and the checksum checked before launch."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin_di.launch.checksum import (
    ChecksumMismatchError,
    command_file,
    module_file,
    sha256_file,
    verify_checksum,
)
from plugin_di.launch.discovery import DiscoveryError, discover, find
from plugin_di.launch.process import LaunchConfig, PluginProcess

ROOT = Path(__file__).resolve().parents[2]
KV_SOURCE = """
from examples.kv.plugin import make_plugin

plugin = make_plugin()
factory = make_plugin
not_a_plugin = 42
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real (unpacked) distribution on sys.path with plugin_di.plugins entry points."""
    (tmp_path / "demo_kv_plugin.py").write_text(KV_SOURCE)
    dist = tmp_path / "demo_kv_plugin-2.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-kv-plugin\nVersion: 2.1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [plugin_di.plugins]
            kv-demo = demo_kv_plugin:plugin
            kv-factory = demo_kv_plugin:factory
            broken = demo_kv_plugin:not_a_plugin
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.modules.pop("demo_kv_plugin", None)


def test_discover_lists_installed_plugins(installed: Path) -> None:
    found = discover()
    demo = found["kv-demo"]
    assert demo.distribution == "demo-kv-plugin"
    assert demo.version == "2.1.0"
    assert demo.target == "demo_kv_plugin:plugin"
    assert demo.load().name == "kv"
    assert found["kv-factory"].load().name == "kv"
    with pytest.raises(DiscoveryError, match="names a int, not a plugin_di Plugin"):
        found["broken"].load()


def test_find_unknown_plugin_lists_what_is_installed(installed: Path) -> None:
    with pytest.raises(DiscoveryError, match=r"no plugin named 'nope'.*installed: broken, kv-demo"):
        find("nope")


def test_discovered_command_is_python_m_plugin_di_serve(installed: Path) -> None:
    assert find("kv-demo").command == [
        sys.executable,
        "-m",
        "plugin_di",
        "serve",
        "demo_kv_plugin:plugin",
    ]


async def test_discovered_plugin_serves_in_a_child_process(installed: Path) -> None:
    pythonpath = os.pathsep.join([str(installed), str(ROOT)])
    proc = PluginProcess(
        LaunchConfig(
            name="kv-demo", command=find("kv-demo").command, env={"PYTHONPATH": pythonpath}
        )
    )
    line = await proc.start()
    try:
        assert line.address.startswith("127.0.0.1:")
    finally:
        await proc.stop()


@pytest.mark.parametrize("placement", ["in-memory", "process"])
async def test_installed_plugin_as_a_provider(installed: Path, placement: str) -> None:
    from dependency_injector import containers, providers

    from examples.kv.gen.kv.v1 import kv_pb2
    from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
    from plugin_di.di.app import App
    from plugin_di.di.providers import installed as installed_plugin

    pythonpath = os.pathsep.join([str(installed), str(ROOT)])

    class C(containers.DeclarativeContainer):
        kv = installed_plugin("kv-demo", placement, env={"PYTHONPATH": pythonpath})
        client = providers.Singleton(lambda c: c, kv.client(KVServiceClient))

    app = App(C, sinks=[])
    await app.start()
    try:
        client = app.container.client()
        await client.put(kv_pb2.PutRequest(key="a", value=b"1"))
        assert (await client.get(kv_pb2.GetRequest(key="a"))).value == b"1"
    finally:
        await app.stop()


def test_checksum_of_module_and_executable(tmp_path: Path) -> None:
    path = tmp_path / "plugin-bin"
    path.write_bytes(b"#!/bin/sh\necho hi\n")
    digest = sha256_file(path)
    verify_checksum("bin", path, digest.upper())
    verify_checksum("bin", path, "sha256:" + digest)
    path.write_bytes(b"#!/bin/sh\necho tampered\n")
    with pytest.raises(ChecksumMismatchError) as info:
        verify_checksum("bin", path, digest)
    message = str(info.value)
    assert "plugin 'bin' refused to launch" in message
    assert str(path) in message
    assert digest in message


def test_command_file_resolves_python_m_and_path() -> None:
    assert module_file("plugin_di").name == "__main__.py"  # a package runs its __main__
    assert command_file([sys.executable, "-m", "json.tool"]).name == "tool.py"
    assert command_file(["sh", "-c", "true"]).name == "sh"
    with pytest.raises(FileNotFoundError, match="not importable"):
        module_file("no_such_module_here")
