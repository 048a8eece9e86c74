"""A plugin module whose import fails."""

import plugin_config_that_is_not_installed  # noqa: F401  # type: ignore[import-not-found]
