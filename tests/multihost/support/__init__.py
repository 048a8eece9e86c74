"""The multi-host tests' own helpers: hosts on one store, host processes, a redis-server."""
