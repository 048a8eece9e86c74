"""``plugin-di check MODULE:ATTR``: validate the graph; build and start nothing.

Exit 0 with one summary line (providers and edges) when the graph is valid; exit 1
with the error text on stderr otherwise.
"""

from __future__ import annotations

import argparse

from plugin_di.cli._app import CommandError, fail, load_app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="MODULE:ATTR", help="an App, or a container class or instance"
    )


def run(args: argparse.Namespace) -> int:
    from plugin_di.di.errors import LifecycleError

    try:
        app = load_app(args.target)
        app.validate()
    except (CommandError, LifecycleError) as exc:
        return fail("check", exc)
    stages = len(app.start_order())
    print(f"ok: {app.name}: {len(app.nodes)} providers, {app.edges} edges, {stages} start stages")
    return 0
