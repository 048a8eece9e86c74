"""pytest fixtures for plugin-di apps (registered through the pytest11 entry point)."""
