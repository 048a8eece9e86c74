"""The app's warm zygote (`plugin_di.launch.shared_zygote`) as a node of its start walk.

While the App builds its providers, `AppZygote.building` makes it the current one: each
``ProcessPlugin`` built then calls `current` and `AppZygote.adopt`, which records the node
being built as a user of the zygote. `AppZygote.node` is the ``<zygote>`` node's hook: the
users depend on it, so it starts first (as early as the walk allows) and stops last.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar

from plugin_di.di.lifecycle import Hook, Lifecycle
from plugin_di.launch.shared_zygote import SharedZygote
from plugin_di.settings import Settings

ZYGOTE_NODE = "<zygote>"
"""Name of the start-walk node that starts and stops the app's zygote."""

_CURRENT: ContextVar[AppZygote | None] = ContextVar("plugin_di_app_zygote", default=None)


def current() -> AppZygote | None:
    """The zygote of the App whose providers are being built, if any."""
    return _CURRENT.get()


class AppZygote:
    """One App's shared zygote and the provider nodes that fork from it."""

    def __init__(self, lifecycle: Lifecycle, settings: Settings) -> None:
        self.settings = settings
        """The app's settings (the plugins built by the app take their defaults from them)."""
        self.enabled = settings.zygote
        # a zygote slower than this leaves the plugins to be spawned: well within the hook's budget
        ready = min(settings.plugin_start_timeout, settings.hook_timeout / 2)
        self.shared = SharedZygote(ready_timeout=ready)
        self.users: set[str] = set()
        self._lifecycle = lifecycle

    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        """Make this the current app zygote while providers are built."""
        token = _CURRENT.set(self)
        try:
            yield
        finally:
            _CURRENT.reset(token)

    def adopt(
        self,
        command: Sequence[str],
        *,
        cwd: str | None,
        env: Mapping[str, str],
        preload: bool,
    ) -> SharedZygote | None:
        """Fork ``command`` from the app's zygote (None: it is off); ``preload``: import its
        modules ahead."""
        if not self.enabled:
            return None
        owner = self._lifecycle._owner
        if owner is not None:
            self.users.add(owner)
        if preload:
            self.shared.want(command, cwd=cwd, env=env)
        return self.shared

    def hook(self) -> Hook:
        """Start the zygote (never fails: plugins are spawned then); stop it, always."""
        return Hook(
            on_start=self.shared.start, on_stop=self.shared.aclose, name="zygote", always_stop=True
        )
