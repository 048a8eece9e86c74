"""Serve the logger plugin: ``python -m examples.logger``."""

from __future__ import annotations

import sys

from examples.logger.plugin import plugin
from plugin_di.plugin.server import serve

if __name__ == "__main__":
    sys.exit(serve(plugin))
