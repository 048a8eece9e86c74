"""Launch strategies: in-memory, process and remote plugins; handshake; supervision."""
