"""The host's plain HTTP probes, ``/healthz`` and ``/readyz``, as its plugins serve them.

``/healthz`` answers 200 ``ok`` while the host's server answers at all (liveness).
``/readyz`` answers 200 ``ready`` while the host serves and is not stopping and, on a
shared store (several hosts on one Redis), while its last exchange with the store worked;
else 503 ``not ready``. Neither needs a credential: they reveal nothing but the state.
"""

from __future__ import annotations

from collections.abc import Callable

from plugin_di.plugin.health import Health, HTTPProbes

__all__ = ["HostProbes"]


class HostProbes(HTTPProbes):
    """`HTTPProbes` whose readiness is the host's: serving, and its store reachable."""

    def __init__(
        self,
        health: Health,
        serving: Callable[[], bool],
        store_reachable: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(health)
        self._serving = serving
        self._store_reachable = store_reachable

    def ready(self) -> bool:
        if not (super().ready() and self._serving()):
            return False
        return self._store_reachable is None or self._store_reachable()
