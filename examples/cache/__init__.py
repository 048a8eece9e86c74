"""The cache example plugin: a KV cache that logs through the logger it finds on the host."""
