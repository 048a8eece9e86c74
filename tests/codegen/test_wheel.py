"""The built wheel carries the protocol's .proto files, and `plugin-di proto path` finds them."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest

from tests.codegen.support import ROOT, TIMEOUT, run


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """plugin-di's wheel, built from this tree (``pip wheel --no-deps``)."""
    out = tmp_path_factory.mktemp("wheel")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out)]
    result = run([*pip_wheel, str(ROOT)], out, timeout=TIMEOUT * 2)
    if result.returncode != 0 and "hatchling" in result.stderr:
        pytest.skip(f"no build backend reachable to build the wheel: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("plugin_di-*.whl")
    return built


def test_the_wheel_carries_every_proto_file_of_the_repository(wheel: Path) -> None:
    expected = {
        f"plugin_di/proto/{p.relative_to(ROOT / 'proto').as_posix()}"
        for p in (ROOT / "proto").rglob("*.proto")
    }
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "plugin_di/proto/connectplugin/v1/handshake.proto" in expected
        assert expected <= names, sorted(expected - names)
        handshake = archive.read("plugin_di/proto/connectplugin/v1/handshake.proto")
        entry_points = archive.read(
            next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    assert handshake == (ROOT / "proto" / "connectplugin" / "v1" / "handshake.proto").read_bytes()
    assert "protoc-gen-plugin-di = plugin_di.codegen.protoc_plugin:main" in entry_points


def test_the_installed_wheel_tells_where_its_protos_are(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)  # a wheel is installed by unpacking it
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = run([sys.executable, "-m", "plugin_di.cli", "proto", "path"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    printed = Path(result.stdout.strip())
    assert printed == target / "plugin_di" / "proto"
    assert (printed / "grpc" / "health" / "v1" / "health.proto").is_file()
