"""A module that raises while it is imported (a CLI test target)."""

raise RuntimeError("configuration file not found")
