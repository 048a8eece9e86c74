"""A bounded subset of the Connect conformance suite, and the harness's own checks."""
