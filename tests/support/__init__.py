"""Helpers shared by more than one test package, one module per job."""
