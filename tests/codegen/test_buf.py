"""The documented buf.gen.yaml generates what `plugin-di proto gen` does."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.codegen.support import GREET_PROTO, ROOT, run, venv_path

GREET = ROOT / "examples" / "greet"


def test_buf_generate_with_the_documented_config_matches_proto_gen(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    buf = shutil.which("buf", path=str(bin_dir)) or shutil.which("buf")
    if buf is None:
        pytest.skip("buf is not installed (pip install buf-bin)")
    shutil.copytree(GREET_PROTO, tmp_path / "proto")
    shutil.copy(GREET / "buf.gen.yaml", tmp_path)
    result = run([buf, "generate"], tmp_path, venv_path())
    assert result.returncode == 0, result.stderr
    generated = sorted(p.relative_to(tmp_path / "gen") for p in (tmp_path / "gen").rglob("*.py*"))
    assert [p.as_posix() for p in generated] == [
        "greet/v1/greet_connect.py",
        "greet/v1/greet_pb2.py",
        "greet/v1/greet_pb2.pyi",
        "greet/v1/greet_plugin.py",
    ]
    # The committed code is `plugin-di proto gen`'s (tools/protogen.py). greet_pb2.py differs
    # only in its embedded descriptor (buf adds each field's json_name).
    for path in generated:
        if path.name != "greet_pb2.py":
            assert (tmp_path / "gen" / path).read_text() == (GREET / "gen" / path).read_text()
