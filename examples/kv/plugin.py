"""The KV example plugin: ``plugin-di serve examples.kv.plugin:plugin`` serves it."""

from __future__ import annotations

from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from examples.kv.store import KVStore
from plugin_di.plugin.definition import Plugin, Service


def make_plugin() -> Plugin:
    """A KV plugin with a fresh, empty store."""
    return Plugin(
        name="kv",
        version="1.0.0",
        services=[Service(KVServiceASGIApplication, KVServiceClient, impl=KVStore())],
    )


plugin = make_plugin()
