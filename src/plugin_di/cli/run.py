"""``plugin-di run MODULE:ATTR``: start the app, run until SIGINT/SIGTERM, stop it.

Exit 0 after a clean stop on SIGTERM (or the code given to ``Shutdowner.shutdown``),
130 after SIGINT; exit 1 when start fails, with the rollback report (each failure once,
with the user's traceback) on stderr. Events are logged to stderr at
``PLUGIN_DI_LOG_LEVEL`` in ``PLUGIN_DI_LOG_FORMAT`` (`plugin_di.logs`).
"""

from __future__ import annotations

import argparse
import os

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
    from plugin_di.logs import configure_logging

    configure_logging(app.settings.log_level, app.settings.log_format)
    with observed_from_env(os.environ, app.name):  # PLUGIN_DI_OTEL=1, before the app builds
        return app.run()
