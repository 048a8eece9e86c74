"""One warm zygote shared by the process plugins of an app: how they start by default.

The ``ProcessPlugin`` providers an `App` builds that run ``python -m MODULE`` share one
`SharedZygote` (unless ``Settings.zygote`` is off), through the app's Lifecycle
(``Lifecycle.shared``): the app's start walk gets a ``<zygote>`` node those plugins depend
on, which starts the zygote (its imports, ~200 ms, while the plugins' other dependencies
start) and stops it after the last of them stopped. Supervisor restarts fork from it too.

Forking never makes a plugin fail that spawning would have started:

* a command the zygote cannot run as a spawn would (another interpreter, other
  interpreter-startup ``PYTHON*`` variables, not ``-m``) is spawned;
* a zygote that cannot start leaves every plugin to be spawned (a warning says why);
* a zygote that died is started again at the next launch; once a start has failed (or
  taken longer than ``ready_timeout``), plugins are spawned from then on. The plugins of a
  dead zygote were its children: they got their parent-death SIGTERM, and their
  supervisors restart them per policy.

The plugins' own modules are preloaded too, where that is safe to do ahead: the modules
the ``-m`` file imports at top level (found by reading it, not running it), when the
plugin resolves imports as the host does (same ``cwd`` and ``PYTHONPATH``) and has no
``checksum`` (a checksummed plugin's code is read from disk at each launch, after the
check, as when spawned). A module that fails to import in the zygote is left to the plugin.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.machinery
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from plugin_di.launch.zygote._zygote import (
    DEFAULT_PRELOAD,
    OPTIONAL_PRELOAD,
    Zygote,
    ZygoteChild,
    ZygoteError,
)
from plugin_di.rpc.telemetry import current as current_telemetry

__all__ = ["SharedZygote", "main_imports"]

log = logging.getLogger("plugin_di.launch.zygote")

OTEL_PRELOAD = "plugin_di.otel"
"""Imported ahead (where installed) while the app is instrumented: a plugin the app launches
then serves with OpenTelemetry (``PLUGIN_DI_OTEL=1``) without importing it at each start."""


class SharedZygote:
    """A zygote started on `start`, started again when it died, closed by `aclose`.

    `spawn` returns None where the plugin should be spawned instead.
    """

    def __init__(
        self,
        *,
        python: str = sys.executable,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        ready_timeout: float = 30.0,
    ) -> None:
        self.python = python
        self.preload = tuple(preload)
        self.optional: list[str] = list(OPTIONAL_PRELOAD)
        """Modules to import ahead where they can be: the server's lazy ones and the plugins'
        own (see `want`)."""
        self.ready_timeout = ready_timeout
        self.starts = 0
        """How many zygote processes were started (restarts included)."""
        self.ready_at: float | None = None
        """``time.perf_counter()`` when the latest zygote became ready (for measurements)."""
        self._zygote: Zygote | None = None
        self._starting: asyncio.Task[Zygote | None] | None = None
        self._given_up = False
        self._closed = False

    @property
    def zygote(self) -> Zygote | None:
        """The running zygote, if any."""
        z = self._zygote
        return z if z is not None and z.alive else None

    def want(self, command: Sequence[str], *, cwd: str | None, env: Mapping[str, str]) -> None:
        """Preload the modules of the plugin ``command`` (before `start`), where it is safe.

        ``env``: the variables the plugin sets over the host's environment.
        """
        if current_telemetry() is not None and OTEL_PRELOAD not in self.optional:
            self.optional.append(OTEL_PRELOAD)  # its plugins will serve with it, forked
        same_cwd = cwd is None or os.path.abspath(cwd) == os.getcwd()
        host_path = os.environ.get("PYTHONPATH", "")
        same_path = env.get("PYTHONPATH", host_path) == host_path
        if len(command) < 3 or command[1] != "-m" or not (same_cwd and same_path):
            return
        for module in main_imports(command[2], command[3:]):
            if module not in self.optional:
                self.optional.append(module)

    async def start(self) -> None:
        """Start the zygote; on failure, log why (plugins will be spawned). Never raises."""
        await self._ensure()

    async def _ensure(self) -> Zygote | None:
        if self._closed or self._given_up:
            return None
        if self.zygote is not None:
            return self._zygote
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start_one())
        starting = self._starting
        try:
            return await asyncio.shield(starting)
        finally:
            if starting.done() and self._starting is starting:
                self._starting = None

    async def _start_one(self) -> Zygote | None:
        old, self._zygote = self._zygote, None
        if old is not None:  # it died: reap it before starting another
            await old.aclose()
        self.starts += 1
        try:
            zygote = await Zygote.start(
                self.preload,
                optional=self.optional,
                python=self.python,
                ready_timeout=self.ready_timeout,
            )
        except (ZygoteError, OSError, TimeoutError) as exc:
            self._given_up = True
            log.warning("the app's zygote could not start (%s); plugins will be spawned", exc)
            return None
        if zygote.skipped:
            log.debug("zygote: not preloaded: %s", "; ".join(zygote.skipped))
        if self._closed:  # closed while it started
            await zygote.aclose()
            return None
        self._zygote = zygote
        self.ready_at = time.perf_counter()
        return zygote

    async def spawn(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        pass_fds: Sequence[int] = (),
        limit: int = 2**16,
    ) -> ZygoteChild | None:
        """Fork ``command`` from the zygote; None when it should be spawned instead."""
        for attempt in (1, 2):
            zygote = await self._ensure()
            if zygote is None or not zygote.can_fork(command, env):
                return None
            try:
                return await zygote.spawn(command, env=env, cwd=cwd, pass_fds=pass_fds, limit=limit)
            except ZygoteError as exc:
                if zygote.alive or attempt == 2:
                    log.warning("zygote could not fork %s (%s); spawning it", command[2], exc)
                    return None
                log.warning("the app's zygote died (pid %d); starting another", zygote.pid)
        return None  # pragma: no cover - the loop returns

    async def aclose(self) -> None:
        """Stop the zygote; later launches spawn. Idempotent."""
        self._closed = True
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.cancel()  # Zygote.start stops a zygote it was starting
            with contextlib.suppress(BaseException):
                await starting
        zygote, self._zygote = self._zygote, None
        if zygote is not None:
            await zygote.aclose()


def main_imports(module: str, args: Sequence[str] = ()) -> list[str]:
    """The modules ``python -m module *args`` imports at top level, read from its file.

    For ``python -m plugin_di serve MOD:ATTR`` that is ``MOD``. Nothing is imported
    here; a module that cannot be found is left out.
    """
    if module in ("plugin_di", "plugin_di.cli") and len(args) >= 2 and args[0] == "serve":
        return [args[1].split(":", 1)[0]]
    path = _main_file(module)
    if path is None:
        return []
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return []
    package = module if path.name == "__main__.py" else module.rpartition(".")[0]
    found = dict.fromkeys(_imports(tree.body, package))
    found.pop("__future__", None)
    return list(found)


def _imports(body: Iterable[ast.stmt], package: str) -> Iterable[str]:
    for node in body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.module
            elif node.level > 0 and package:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield f"{base}.{node.module}" if node.module else base
        elif isinstance(node, ast.If | ast.Try):  # ``if __name__ == "__main__":``, fallbacks
            yield from _imports(node.body, package)


def _main_file(module: str) -> Path | None:
    """The file ``-m module`` runs, found without importing anything."""
    path: list[str] | None = None
    spec = None
    parts = module.split(".")
    for i in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), path)
        if spec is None:
            return None
        path = list(spec.submodule_search_locations or [])
    if spec is None:
        return None
    if spec.submodule_search_locations is not None:
        spec = importlib.machinery.PathFinder.find_spec(f"{module}.__main__", path)
    if spec is None or not spec.origin or not spec.has_location:
        return None
    return Path(spec.origin)
