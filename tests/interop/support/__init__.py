"""The interop tests' own helpers: the Go peer's binaries and ``buf curl``."""
