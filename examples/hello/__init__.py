"""The smallest plugin-di app: two services, one needing the other, started and stopped."""
