"""Host tests: registry, broker, router, admission and the Host server."""
