"""The ``plugin-di`` command. Each subcommand lives in its own module and imports lazily."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# subcommand -> module with `add_arguments(parser)` and `run(args) -> int`
_COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("plugin_di.cli.check", "validate an app's dependency graph"),
    "graph": ("plugin_di.cli.graph", "print an app's dependency graph"),
    "run": ("plugin_di.cli.run", "run an app until SIGINT or SIGTERM"),
    "serve": ("plugin_di.cli.serve", "serve a plugin over Connect RPC"),
    "host": ("plugin_di.cli.host", "run a standalone host platform"),
    "join-token": ("plugin_di.cli.join_token", "issue a join token that admits a plugin"),
    "proto": ("plugin_di.cli.proto", "generate a plugin's code; where the protocol's protos are"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``plugin-di`` console script."""
    parser = argparse.ArgumentParser(prog="plugin-di", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = args_list[0] if args_list else None
    for name, (module_name, help_text) in _COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module_name).add_arguments(command)
    args = parser.parse_args(args_list)
    module = importlib.import_module(_COMMANDS[args.command][0])
    code: int = module.run(args)
    return code
