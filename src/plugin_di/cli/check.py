"""``plugin-di check MODULE:ATTR [--build]``: validate the graph; start nothing.

Exit 0 with one summary line (providers and edges) when the graph is valid; exit 1
with the error text on stderr otherwise. ``--build`` also builds every provider (their
constructors run; no start hook does) and imports each process plugin's module in a
child process (`plugin_di.launch.importcheck`): a provider that raises, or a plugin whose
module does not import, is reported with its traceback, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from plugin_di.cli._app import CommandError, fail, load_app

if TYPE_CHECKING:
    from plugin_di.di.app import App
    from plugin_di.launch.importcheck import ImportCheck


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="MODULE:ATTR", help="an App, or a container class or instance"
    )
    parser.add_argument(
        "--build",
        action="store_true",
        help="also build every provider (start nothing) and check that each process "
        "plugin's module imports, in a child process",
    )
    parser.add_argument(
        "--import-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long one plugin's import may take with --build (default 30)",
    )


def run(args: argparse.Namespace) -> int:
    from plugin_di.di.errors import LifecycleError, report

    try:
        app = load_app(args.target)
        app.validate()
    except (CommandError, LifecycleError) as exc:
        return fail("check", exc)
    stages = len(app.start_order())
    print(f"ok: {app.name}: {len(app.nodes)} providers, {app.edges} edges, {stages} start stages")
    if not args.build:
        return 0
    try:
        asyncio.run(app.build())
    except LifecycleError as exc:
        print(f"plugin-di check: {report(exc)}", file=sys.stderr)
        return 1
    print(f"built: {app.name}: {len(app.nodes)} providers")
    failed = 0
    for provider, check in _import_checks(app, args.import_timeout):
        if check.ok:
            print(f"ok: plugin {check.plugin!r} ({provider}): {check.detail}")
            continue
        failed += 1
        detail = "\n".join(f"  {line}" for line in check.detail.splitlines())
        print(
            f"plugin-di check: plugin {check.plugin!r} ({provider}): {check.command} "
            f"does not import:\n{detail}",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _import_checks(app: App, timeout: float) -> list[tuple[str, ImportCheck]]:
    """Each built process plugin of ``app``, by provider name, and what its check found."""
    from plugin_di.di.providers import ProcessPlugin
    from plugin_di.launch.importcheck import check_imports

    graph = app.providers
    managed = set(app.nodes)
    checks = []
    for name, provider in zip(graph.names, graph.providers, strict=True):
        if name in managed and isinstance(provider, ProcessPlugin):
            checks.append((name, check_imports(provider().config, timeout=timeout)))
    return checks
