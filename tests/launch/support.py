"""The launcher tests' own helper: commands that run the fake plugin (fake_plugin.py)."""

from __future__ import annotations

import sys
from pathlib import Path

FAKE = str(Path(__file__).with_name("fake_plugin.py"))


def fake_command(mode: str) -> list[str]:
    return [sys.executable, FAKE, mode]
