"""Fixtures for the plugin runtime tests."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The examples package lives at the repository root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
