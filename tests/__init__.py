"""plugin-di's tests.

Layout: `tests/support/` holds the helpers that more than one test package uses (one module per
job); a package's own helpers are its `support.py` (or `support/` when it needs several modules).
Child programs that tests start (``python -m tests.<package>.<module>``) or load by
``MODULE:ATTR`` keep names that say what they run. pytest puts the repository root on
``sys.path`` (``pythonpath`` in pyproject.toml): no test edits ``sys.path``.
"""
