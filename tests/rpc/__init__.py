"""RPC layer tests: servers, transports, codecs, TLS and errors."""
