"""plugin-di as a user gets it: the wheel built once per session, installed into a fresh venv,
and used from a project outside the repository.

To check another feature from a fresh install, take the ``user_project`` fixture (a
`tests.packaging.support.UserProject`): ``write(path, text)`` the user's files, then
``run(*cmd)`` them (``python app.py``, ``plugin-di ...``, ``python -m pytest``) or
``mypy_strict(*files)``; ``run`` raises with the command's output when it exits non-zero
(``check=False`` to look at a failure). Extras' dependencies come from the project's
``.venv``, so whatever ``pip install -e '.[dev]'`` installed is importable there.
"""
