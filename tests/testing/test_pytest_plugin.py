"""The pytest plugin as a user's project sees it: pytest runs in a subprocess on a test file.

The file uses ``di_started`` and ``di_override`` the way docs/testing.md shows; each run
checks the outcome pytest reports, and the messages when pytest-asyncio is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

USER_TESTS = """
import pytest
from dependency_injector import containers, providers

from plugin_di.testing import Overrides, StartedApps

LOG = []


class Service:
    def __init__(self, name):
        self.name = name

    async def start(self):
        LOG.append(("start", self.name))

    async def stop(self):
        LOG.append(("stop", self.name))
        if self.name == "fails-to-stop":
            raise RuntimeError("cannot stop")


class AppContainer(containers.DeclarativeContainer):
    service = providers.Singleton(Service, "real")


@pytest.mark.asyncio
async def test_starts(di_started: StartedApps, di_override: Overrides) -> None:
    container = AppContainer()
    di_override(container, service=Service("fake"))
    app = await di_started(container)
    assert app.state == "started"
    assert LOG == [("start", "fake")]


def test_the_app_was_stopped_after_the_test() -> None:
    assert LOG == [("start", "fake"), ("stop", "fake")]
    assert isinstance(AppContainer().service(), Service)


@pytest.mark.asyncio
async def test_stop_errors_fail_the_test(di_started: StartedApps) -> None:
    class Failing(containers.DeclarativeContainer):
        service = providers.Singleton(Service, "fails-to-stop")

    await di_started(Failing)


def test_sync_tests_are_told(di_started: StartedApps) -> None:
    pass


def test_override_alone(di_override: Overrides) -> None:
    container = AppContainer()
    di_override(container, service="fake")
    assert container.service() == "fake"
"""


# hypothesis' plugin alone takes seconds to import; the user's tests do not need it
QUICK = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
NOT_INSTALLED = (
    "raise ModuleNotFoundError(\"No module named 'pytest_asyncio'\", name='pytest_asyncio')\n"
)


def run_pytest(tmp_path: Path, *args: str, without_pytest_asyncio: bool = False) -> str:
    """pytest's output on `USER_TESTS`; ``without_pytest_asyncio``: as if it were not
    installed (a package of that name that fails to import comes first on the path)."""
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    env = dict(os.environ)
    if without_pytest_asyncio:
        shadow = tmp_path / "shadow" / "pytest_asyncio"
        shadow.mkdir(parents=True)
        (shadow / "__init__.py").write_text(NOT_INSTALLED)
        env["PYTHONPATH"] = str(shadow.parent)
        args = ("-p", "no:asyncio", *args)  # its entry point would fail to load
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *QUICK, "-rA", *args, "test_user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout + done.stderr


def test_di_started_stops_apps_after_the_test_and_fails_on_stop_errors(tmp_path: Path) -> None:
    out = run_pytest(tmp_path)
    assert "PASSED test_user.py::test_override_alone" in out
    assert "PASSED test_user.py::test_starts" in out
    assert "PASSED test_user.py::test_the_app_was_stopped_after_the_test" in out
    assert "ERROR test_user.py::test_stop_errors_fail_the_test" in out
    assert "di_started: stopping apps failed" in out
    assert "ERROR test_user.py::test_sync_tests_are_told" in out
    assert "di_started works in async tests (async def), not in test_sync_tests_are_told" in out


def test_without_pytest_asyncio_di_started_says_what_it_needs(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, without_pytest_asyncio=True)
    assert "ERROR test_user.py::test_starts" in out
    assert (
        "di_started needs pytest-asyncio, which is not installed: "
        "install it with `pip install 'plugin-di[pytest]'`"
    ) in out
    assert "PASSED test_user.py::test_override_alone" in out  # di_override needs nothing


def test_with_pytest_asyncio_disabled_di_started_says_so(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, "-p", "no:asyncio")
    assert "di_started needs pytest-asyncio, which is disabled (-p no:asyncio)" in out
