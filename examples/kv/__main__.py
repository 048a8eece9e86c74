"""Serve the KV plugin: ``python -m examples.kv``.

The same as ``plugin-di serve examples.kv.plugin:plugin``.
"""

from __future__ import annotations

import sys

from examples.kv.plugin import plugin
from plugin_di.plugin.server import serve

if __name__ == "__main__":
    sys.exit(serve(plugin))
