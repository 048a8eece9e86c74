"""Multi-host tests against a real redis-server."""
