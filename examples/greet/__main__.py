"""Serve the greeter plugin: ``python -m examples.greet`` (what a ProcessPlugin launches)."""

from __future__ import annotations

import sys

from examples.greet.plugin import plugin
from plugin_di import serve

if __name__ == "__main__":
    sys.exit(serve(plugin))
