"""Run `plugin-di proto gen` and Python code against its output, each in a subprocess.

Generated modules register their proto files in protobuf's default pool, which already
holds the committed examples' copies in this process: they are imported elsewhere.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GREET_PROTO = ROOT / "examples" / "greet" / "proto"
KV_PROTO = ROOT / "examples" / "kv" / "proto"
TIMEOUT = 120


def plugin_di(
    args: Sequence[str], cwd: Path, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``plugin-di ARGS`` run in ``cwd``, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "plugin_di.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def python(code: str, cwd: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``python -c CODE`` in ``cwd`` (its folder importable, as in a user's project)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
