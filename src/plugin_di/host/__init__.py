"""The host platform: identity, registry, router, capability broker, health tracking."""
