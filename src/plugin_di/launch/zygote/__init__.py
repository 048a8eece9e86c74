"""The warm zygote: one process that has imported the plugin runtime forks plugins from it.

* `Zygote` (`._zygote`): the host's side of one zygote process: start it, fork
  ``python -m MODULE`` plugins from it (`ZygoteChild`), learn their exit codes;
* `SharedZygote` (`._shared`): an app's zygote, started by the app's start walk, started
  again when it died, and falling back to spawning whatever it cannot run as a spawn would;
* ``._main``: the zygote process itself (``python -m plugin_di.launch.zygote._main``).

Names are imported on first use, so the zygote process loads only ``._main``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_di._lazy import lazy_exports

__all__ = [
    "DEFAULT_PRELOAD",
    "OPTIONAL_PRELOAD",
    "SharedZygote",
    "Zygote",
    "ZygoteChild",
    "ZygoteError",
    "main_imports",
]

if TYPE_CHECKING:
    from plugin_di.launch.zygote._shared import SharedZygote, main_imports
    from plugin_di.launch.zygote._zygote import (
        DEFAULT_PRELOAD,
        OPTIONAL_PRELOAD,
        Zygote,
        ZygoteChild,
        ZygoteError,
    )

__getattr__ = lazy_exports(
    __name__,
    {
        "plugin_di.launch.zygote._zygote": (
            "DEFAULT_PRELOAD",
            "OPTIONAL_PRELOAD",
            "Zygote",
            "ZygoteChild",
            "ZygoteError",
        ),
        "plugin_di.launch.zygote._shared": ("SharedZygote", "main_imports"),
    },
)
