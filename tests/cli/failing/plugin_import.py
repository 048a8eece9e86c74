"""A plugin module whose import fails."""

import tests.cli.failing.no_such_module  # noqa: F401  # type: ignore[import-not-found]
