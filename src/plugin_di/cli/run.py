"""``plugin-di run MODULE:ATTR``: start the app, run until SIGINT/SIGTERM, stop it.

Exit 0 after a clean stop (or the code given to ``Shutdowner.shutdown``); exit 1
when start fails, with the rollback report on stderr. Events are logged to stderr
at ``PLUGIN_DI_LOG_LEVEL`` in ``PLUGIN_DI_LOG_FORMAT``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from plugin_di.cli._app import CommandError, fail, load_app
from plugin_di.plugin.observed import observed_from_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="MODULE:ATTR", help="an App, or a container class or instance"
    )


def run(args: argparse.Namespace) -> int:
    try:
        app = load_app(args.target)
    except CommandError as exc:
        return fail("run", exc)
    settings = app.settings
    text = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(message)s" if settings.log_format == "json" else text,
        stream=sys.stderr,
    )
    with observed_from_env(os.environ, app.name):  # PLUGIN_DI_OTEL=1, before the app builds
        return app.run()
