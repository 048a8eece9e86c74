"""The version of plugin-di, in one place: the package face and the wire metadata read it here."""

__version__ = "0.1.0"
