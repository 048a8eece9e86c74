"""Functional tests of the fast paths (issue 7); timings are never asserted."""
