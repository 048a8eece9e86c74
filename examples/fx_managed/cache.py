"""``python -m examples.fx_managed.cache``: the `examples.cache` plugin under its former name.

The fx_managed app now runs ``python -m examples.cache``; launch tests still start
this module (and import ``plugin`` from it), so it serves the very same plugin.
"""

from __future__ import annotations

import sys

from examples.cache.plugin import plugin, store
from plugin_di.plugin.host_client import serve_on_host

__all__ = ["plugin"]

if __name__ == "__main__":
    sys.exit(serve_on_host(plugin, on_session=store.attach))
