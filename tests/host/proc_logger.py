"""The example logger plugin, joining the host (self-registering): run as a test subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.logger.plugin import plugin
from plugin_di.plugin import serve_on_host

if __name__ == "__main__":
    sys.exit(serve_on_host(plugin))
