"""Plugins installed as Python packages, found through the ``plugin_di.plugins`` entry points.

A distribution declares, in its ``pyproject.toml``::

    [project.entry-points."plugin_di.plugins"]
    kv = "my_kv_plugin.plugin:plugin"

The entry point names a `Plugin` object (or a function returning one). A
discovered plugin can run in memory (``load()``) or in a child process, served by
``python -m plugin_di serve MODULE:ATTR`` (`DiscoveredPlugin.command`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from plugin_di.plugin.definition import Plugin

GROUP = "plugin_di.plugins"


class DiscoveryError(LookupError):
    """A plugin entry point is missing, or does not name a Plugin."""


@dataclass(frozen=True)
class DiscoveredPlugin:
    """One entry point of the ``plugin_di.plugins`` group."""

    name: str
    target: str
    distribution: str
    version: str

    @property
    def command(self) -> list[str]:
        """The command line that serves this plugin in a child process."""
        return [sys.executable, "-m", "plugin_di", "serve", self.target]

    def load(self) -> Plugin:
        """Import the entry point; call it if it is a factory; check it is a `Plugin`."""
        try:
            value = _entry_point(self.name).load()
        except Exception as exc:
            raise DiscoveryError(
                f"plugin entry point {self.name!r} ({self.target}, from {self.distribution}) "
                f"failed to import: {exc}"
            ) from exc
        if callable(value) and not isinstance(value, Plugin):
            value = value()
        if not isinstance(value, Plugin):
            raise DiscoveryError(
                f"plugin entry point {self.name!r} ({self.target}) names a "
                f"{type(value).__name__}, not a plugin_di Plugin"
            )
        return value


def _entry_point(name: str) -> EntryPoint:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return ep
    raise DiscoveryError(f"no plugin named {name!r} in entry-point group {GROUP!r}")


def discover() -> dict[str, DiscoveredPlugin]:
    """Every installed plugin, by entry-point name."""
    found: dict[str, DiscoveredPlugin] = {}
    for ep in entry_points(group=GROUP):
        dist = ep.dist
        found[ep.name] = DiscoveredPlugin(
            name=ep.name,
            target=ep.value,
            distribution=dist.metadata["Name"] if dist is not None else "",
            version=dist.version if dist is not None else "",
        )
    return found


def find(name: str) -> DiscoveredPlugin:
    """The installed plugin ``name``; `DiscoveryError` listing what is installed otherwise."""
    plugins = discover()
    if name in plugins:
        return plugins[name]
    known = ", ".join(sorted(plugins)) or "none"
    raise DiscoveryError(
        f"no plugin named {name!r} is installed (entry-point group {GROUP!r}; installed: "
        f"{known}); pip install the package that provides it"
    )
