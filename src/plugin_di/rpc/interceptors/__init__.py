"""Client and server interceptors: auth, rate limiting, retry, circuit breaker, chain."""
