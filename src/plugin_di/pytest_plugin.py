"""pytest fixtures for plugin-di apps (registered through the pytest11 entry point).

``di_override``: call it like `plugin_di.testing.override`; every override is undone
after the test. ``di_started``: ``app = await di_started(AppContainer)`` starts an app
(or a container) in an async test and stops it after the test, failing on stop errors.

``di_started`` needs pytest-asyncio (``pip install 'plugin-di[pytest]'``): without it,
a test asking for it fails with a message that says so, rather than finding no fixture.

Imports stay light: this module is loaded in every pytest session of a project that
has plugin-di installed.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from plugin_di.testing import Overrides, StartedApps

_APPS_FIXTURE = "_di_started_apps"
NEEDS_ASYNCIO = (
    "di_started needs pytest-asyncio, {why}: install it with "
    "`pip install 'plugin-di[pytest]'` (or `pip install pytest-asyncio`)"
)


@pytest.fixture
def di_override() -> Iterator[Overrides]:
    """Override providers for this test; everything is restored after it."""
    from plugin_di.testing import Overrides

    overrides = Overrides()
    try:
        yield overrides
    finally:
        overrides.restore()


@pytest.fixture
def di_started(request: pytest.FixtureRequest) -> StartedApps:
    """Start apps during an async test (``await di_started(app_or_container)``); stop
    them after it. Fails the test with the reason when it cannot work."""
    plugins = request.config.pluginmanager
    if _asyncio_fixture is None:
        pytest.fail(NEEDS_ASYNCIO.format(why="which is not installed"), pytrace=False)
    if not plugins.has_plugin("asyncio"):
        pytest.fail(NEEDS_ASYNCIO.format(why="which is disabled (-p no:asyncio)"), pytrace=False)
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        pytest.fail(
            f"di_started works in async tests (async def), not in {request.node.name}",
            pytrace=False,
        )
    apps: StartedApps = request.getfixturevalue(_APPS_FIXTURE)
    return apps


async def _started_apps() -> AsyncIterator[StartedApps]:
    """The apps ``di_started`` started, stopped after the test in the test's event loop."""
    from plugin_di.testing import StartedApps

    apps = StartedApps()
    try:
        yield apps
    finally:
        await apps.aclose()


try:
    import pytest_asyncio
except ImportError:
    _asyncio_fixture = None
else:
    _asyncio_fixture = pytest_asyncio.fixture(_started_apps, name=_APPS_FIXTURE)
