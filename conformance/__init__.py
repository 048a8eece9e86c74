"""The Connect conformance suite against plugin-di's servers and clients (docs/interop.md)."""
