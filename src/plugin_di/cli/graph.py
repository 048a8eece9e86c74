"""``plugin-di graph MODULE:ATTR --format text|dot|mermaid``: print the graph and start order.

The graph is printed even when it is invalid (a cycle, a missing dependency); the
error then follows on stderr and the exit code is 1.
"""

from __future__ import annotations

import argparse

from plugin_di.cli._app import CommandError, fail, load_app

FORMATS = ("text", "dot", "mermaid")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="MODULE:ATTR", help="an App, or a container class or instance"
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (text)")


def run(args: argparse.Namespace) -> int:
    from plugin_di.di.errors import LifecycleError

    try:
        app = load_app(args.target)
    except CommandError as exc:
        return fail("graph", exc)
    print(app.export(args.format), end="")
    try:
        app.validate()
    except LifecycleError as exc:
        return fail("graph", exc)
    return 0
