"""Interceptor tests: auth, retry, rate limit, circuit breaker and chains."""
