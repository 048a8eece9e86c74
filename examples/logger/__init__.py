"""The logger capability example plugin (``capability.logger.v1.Logger``)."""
