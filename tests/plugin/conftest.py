"""Fixtures for the plugin runtime tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The examples package lives at the repository root.
