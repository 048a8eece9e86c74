"""Serve the cache plugin and join the host: ``python -m examples.cache``.

With ``PLUGIN_DI_HOST_URL`` set it self-registers with that host; launched by a
host without it, it waits for the host to hand it an identity.
"""

from __future__ import annotations

import sys

from examples.cache.plugin import plugin, store
from plugin_di.plugin import serve_on_host

if __name__ == "__main__":
    sys.exit(serve_on_host(plugin, on_session=store.attach))
