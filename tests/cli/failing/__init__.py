"""Apps and plugins that fail to start, for tests/cli/test_start_failures.py."""
