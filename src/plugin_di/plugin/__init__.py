"""Plugin-side runtime: serve(), handshake, health, control, and the client that dispenses.

Imports only `plugin_di.rpc` and generated code, so a plugin process starts fast.
"""
