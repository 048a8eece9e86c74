"""Transports, interceptors, error mapping and validation for Connect RPC."""
