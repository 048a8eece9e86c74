"""What a host and its plugins agree on: the environment a host sets for a plugin process
it launches, the magic cookie, and the handshake metadata keys.

Names follow hashicorp/go-plugin where it has one, so tooling that knows
go-plugin recognises them.
"""

from __future__ import annotations

# The magic cookie is passed as an environment variable named by its key.
DEFAULT_MAGIC_COOKIE_KEY = "CONNECT_PLUGIN"
DEFAULT_MAGIC_COOKIE_VALUE = "d3f40b3c2e1a5f8b9c4d7e6a1b2c3d4e"
CORE_PROTOCOL_VERSION = 1

PROTOCOL_VERSIONS = "PLUGIN_PROTOCOL_VERSIONS"
"""Comma-separated application protocol versions the host speaks, e.g. ``1,2``."""

CLIENT_CERT = "PLUGIN_CLIENT_CERT"
"""PEM certificate of the host, for automatic mTLS."""

UNIX_SOCKET_DIR = "PLUGIN_UNIX_SOCKET_DIR"
"""When set, the plugin serves on a Unix socket created in this directory."""

HOST_URL = "PLUGIN_DI_HOST_URL"
"""Base URL of the host platform, when there is one; several hosts of one platform
(a shared store) as a comma-separated list, the first tried first."""

BASE_URL = "PLUGIN_DI_BASE_URL"
"""The URL hosts reach this plugin at, when it is not the address it listens on (a plugin
bound to 0.0.0.0 in a container: ``http://kv:8080``, ``http://$(POD_IP):8080``)."""

HEARTBEAT_INTERVAL = "PLUGIN_DI_HEARTBEAT_INTERVAL"
"""Seconds between a joined plugin's heartbeats (default: a third of the lease the host
announces, else 10)."""

JOIN_TOKEN = "PLUGIN_DI_JOIN_TOKEN"
"""The credential a self-registering plugin sends on its handshake with the host at
``HOST_URL`` (``Authorization: Bearer``): a join token the operator issued, or the launch
secret an app registered with its in-process host."""

LAUNCH_SECRET = "PLUGIN_DI_LAUNCH_SECRET"
"""A per-launch secret the host can check the plugin presents back."""

PARENT_PIPE_FD = "PLUGIN_DI_PARENT_PIPE_FD"
"""File descriptor of an inherited pipe whose end-of-file means the host died."""

PLUGIN_NAME = "PLUGIN_DI_PLUGIN_NAME"
"""The name the host knows the plugin by (for logs)."""

# Handshake metadata (``client_metadata`` of a self-registering plugin, ``server_metadata``
# of the host's answer).
PROVIDES_KEY = "plugin-di.provides"
"""The services a plugin provides: ``type@version`` entries, comma-separated."""
REQUIRES_KEY = "plugin-di.requires"
"""The services a plugin requires: ``type@min_version``, ``?`` first when optional."""
BASE_URL_KEY = "plugin-di.base-url"
"""The URL hosts reach the plugin at (see `BASE_URL`)."""
HEARTBEAT_KEY = "plugin-di.heartbeat"
"""The plugin reports its health periodically (a heartbeat), so a host on a shared store
need not probe it to keep its lease."""
LEASE_TTL_KEY = "plugin-di.lease-ttl"
"""From a host on a shared store: seconds a plugin stays registered without a heartbeat."""
