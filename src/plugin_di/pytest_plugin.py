"""pytest fixtures for plugin-di apps (registered through the pytest11 entry point).

``di_override``: call it like `plugin_di.testing.override`; every override is undone
after the test. ``di_started`` (needs pytest-asyncio): ``app = await di_started(App(C))``
starts an app (or a container) and stops it after the test, failing on stop errors.

Imports stay light: this module is loaded in every pytest session of a project that
has plugin-di installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from plugin_di.di.app import App
    from plugin_di.testing import Overrides


@pytest.fixture
def di_override() -> Iterator[Overrides]:
    """Override providers for this test; everything is restored after it."""
    from plugin_di.testing import Overrides

    overrides = Overrides()
    try:
        yield overrides
    finally:
        overrides.restore()


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - only the sync fixture without pytest-asyncio
    pass
else:

    @pytest_asyncio.fixture
    async def di_started() -> AsyncIterator[Callable[..., Awaitable[App]]]:
        """Start apps during a test (``await di_started(app_or_container)``); stop them after."""
        from plugin_di.di.app import app_from

        apps: list[App] = []

        async def start(target: Any, **options: Any) -> App:
            app = app_from(target, **options)
            await app.start()
            apps.append(app)
            return app

        yield start
        errors: list[Exception] = []
        for app in reversed(apps):
            try:
                await app.stop("test finished")
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup("di_started: stopping apps failed", errors)
