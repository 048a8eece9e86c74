"""The example logger plugin, joining the host (self-registering): run as a test subprocess."""

from __future__ import annotations

import sys

from examples.logger.plugin import plugin
from plugin_di.plugin import serve_on_host

if __name__ == "__main__":
    sys.exit(serve_on_host(plugin))
