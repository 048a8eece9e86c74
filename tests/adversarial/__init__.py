"""Adversarial tests: the public edge attacked from loopback (issue 13)."""
