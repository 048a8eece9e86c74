"""List every PLUGIN_DI_* environment setting: name, default and what it does.

'--markdown' prints docs/settings.md; '--check FILE' exits 1 when FILE differs from it
(the docs are generated from plugin_di.settings.Settings, so they cannot drift).

  plugin-di settings
  plugin-di settings --markdown > docs/settings.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--markdown", action="store_true", help="print the Markdown reference")
    how.add_argument(
        "--check",
        metavar="FILE",
        help="exit 1 when FILE is not the current Markdown reference (for CI)",
    )


def run(args: argparse.Namespace) -> int:
    from plugin_di.cli._settings_doc import render_markdown, render_text

    if args.check:
        path = Path(args.check)
        current = path.read_text() if path.exists() else ""
        if current != render_markdown():
            print(
                f"plugin-di settings: {path} is out of date: "
                f"plugin-di settings --markdown > {path}",
                file=sys.stderr,
            )
            return 1
        return 0
    sys.stdout.write(render_markdown() if args.markdown else render_text())
    return 0
