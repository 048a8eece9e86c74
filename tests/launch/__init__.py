"""Launcher tests: plugin processes, supervision, the zygote and discovery."""
