"""The ``plugin-di`` command. Each subcommand lives in its own module and imports lazily."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from plugin_di._version import __version__

__all__ = ["main"]

DESCRIPTION = """\
Run, serve, inspect and probe plugin-di apps and plugins.

An app is a dependency-injector container (or an App) named MODULE:ATTR, as uvicorn names
its app; the current directory is importable. Plugins speak Connect RPC; a host platform
admits them, keeps their registry and routes calls between them."""

EPILOG = """\
examples:
  plugin-di check myapp.main:Container      validate the dependency graph, start nothing
  plugin-di run myapp.main:Container        start the app; SIGINT or SIGTERM stops it
  plugin-di serve myplugin:plugin --bind 127.0.0.1:8080
  plugin-di health http://127.0.0.1:8080    exit 0 when the plugin is SERVING
  plugin-di call http://127.0.0.1:8080 kv.v1.KVService/Get '{"key": "a"}'

'plugin-di COMMAND --help' shows a command's options and the PLUGIN_DI_* settings it reads.
Every setting: 'plugin-di settings'."""

# subcommand -> module with `add_arguments(parser)` and `run(args) -> int`
_COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("plugin_di.cli.check", "validate an app's dependency graph"),
    "graph": ("plugin_di.cli.graph", "print an app's dependency graph"),
    "run": ("plugin_di.cli.run", "run an app until SIGINT or SIGTERM"),
    "serve": ("plugin_di.cli.serve", "serve a plugin over Connect RPC"),
    "host": ("plugin_di.cli.host", "run a standalone host platform"),
    "join-token": ("plugin_di.cli.join_token", "issue a join token that admits a plugin"),
    "proto": ("plugin_di.cli.proto", "generate a plugin's code; where the protocol's protos are"),
    "health": ("plugin_di.cli.health", "probe a plugin's health (exit codes of grpc-health-probe)"),
    "ls": ("plugin_di.cli.ls", "list a host's plugins, their services and health"),
    "call": ("plugin_di.cli.call", "make one unary call with a JSON body, print the answer"),
    "settings": ("plugin_di.cli.settings", "list every PLUGIN_DI_* setting (or write the docs)"),
}

# Commands whose usage errors exit with another code than argparse's 2.
_USAGE_ERROR_CODE: dict[str, int] = {"health": 1}


def _plain(docstring: str | None) -> str:
    """A module docstring as help text: reST literals become plain quotes."""
    return (docstring or "").replace("``", "'").strip()


def _docs_line() -> str:
    """Where the documentation is: the package's Documentation URL when it declares one."""
    from importlib import metadata

    try:
        urls = metadata.metadata("plugin-di").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("documentation", "docs"):
            return f"Documentation: {url.strip()} (the command line: cli.md; settings: settings.md)"
    return "Documentation: docs/cli.md and docs/settings.md of the plugin-di sources."


class _Parser(argparse.ArgumentParser):
    """Renders, in ``--help`` only, the PLUGIN_DI_* settings its command reads."""

    command: str | None = None
    _epilog_added = False

    def format_help(self) -> str:
        if self._epilog_added:
            return super().format_help()
        self._epilog_added = True
        if self.command is not None:
            from plugin_di.cli._settings_doc import command_epilog

            self.epilog = "\n\n".join(e for e in (self.epilog, command_epilog(self.command)) if e)
        elif self.epilog == EPILOG:
            self.epilog = f"{EPILOG}\n{_docs_line()}"
        return super().format_help()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``plugin-di`` console script."""
    parser = _Parser(
        prog="plugin-di",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"plugin-di {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = args_list[0] if args_list else None
    for name, (module_name, help_text) in _COMMANDS.items():
        command = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == chosen:
            module = importlib.import_module(module_name)
            command.description = _plain(module.__doc__) or help_text
            if isinstance(command, _Parser):
                command.command = name
            module.add_arguments(command)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        if exc.code == 2 and chosen in _USAGE_ERROR_CODE:
            raise SystemExit(_USAGE_ERROR_CODE[chosen]) from None
        raise
    module = importlib.import_module(_COMMANDS[args.command][0])
    code: int = module.run(args)
    return code
