"""The KV double served as a process plugin: ``python -m tests.otel.observed_kv``."""

from __future__ import annotations

import sys

from plugin_di.plugin.server import serve
from tests.otel.support import observed_plugin

if __name__ == "__main__":
    sys.exit(serve(observed_plugin()))
