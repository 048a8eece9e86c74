"""Fixtures of the fresh-install harness: the wheel and its venv once per session, and a new
user project for each test (see `tests.packaging.support`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.support import FreshVenv, UserProject, build_wheel, install_fresh


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """plugin-di's wheel, built from the working tree once per session."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> FreshVenv:
    """A new venv with the wheel installed (``pip install --no-deps``), once per session."""
    return install_fresh(wheel, tmp_path_factory.mktemp("fresh") / "venv")


@pytest.fixture
def user_project(fresh_venv: FreshVenv, tmp_path: Path) -> UserProject:
    """An empty project directory outside the repository, using the fresh install: write
    its files with ``write(path, text)`` and run commands in it with ``run(*cmd)``."""
    root = tmp_path / "user-project"
    root.mkdir()
    return UserProject(root, fresh_venv)
