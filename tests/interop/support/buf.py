"""``buf curl`` (installed with buf-bin, next to the interpreter or on PATH), bounded in time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
needs_buf = pytest.mark.skipif(BUF is None, reason="buf is not installed (pip install buf-bin)")


def buf_curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert BUF is not None
    return subprocess.run(
        [BUF, "curl", "--timeout", "20s", *args, url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
