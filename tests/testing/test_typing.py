"""A user's test module, type-checked with mypy --strict: what must pass, what must fail.

`USER_CODE` marks each line mypy must report with ``# E: code``; `REVEALED` lists the
types mypy must reveal. Every other line must check cleanly.
"""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

USER_CODE = """\
from typing import Any

from dependency_injector import containers, providers

from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di import App, InMemoryPlugin
from plugin_di.testing import FakeClient, Overrides, StartedApps, override, started


class Database:
    def query(self) -> str:
        return "rows"


class AppContainer(containers.DeclarativeContainer):
    db = providers.Singleton(Database)
    kv = InMemoryPlugin(make_plugin())
    kv_client = kv.client(KVServiceClient)


app = App(AppContainer)
reveal_type(app)
reveal_type(App(AppContainer()))
rows: str = app.container.db().query()
client: KVServiceClient = app.container.kv_client()


def takes_any_app(app: App) -> None:  # a bare App still checks under --strict
    pass


async def test_started() -> None:
    async with started(AppContainer) as running:
        reveal_type(running)
        running.container.db().query()
    async with started(app) as same:
        reveal_type(same)


async def test_fixtures(di_started: StartedApps, di_override: Overrides) -> None:
    container = AppContainer()
    di_override(container, db=Database())
    started_app = await di_started(container)
    reveal_type(started_app)
    with override(container, kv=object()) as overrides:
        reveal_type(overrides)
    container.kv.override(FakeClient(object()))  # dependency-injector's own, with a fake


wrong: int = app.container.db()  # E: assignment
App(42)  # E: call-overload
override(42, db=Database())  # E: arg-type


async def test_wrong(di_started: StartedApps) -> None:
    await di_started("AppContainer")  # E: call-overload
"""

REVEALED = [
    'Revealed type is "plugin_di.di.app.App[user_tests.AppContainer]"',
    'Revealed type is "plugin_di.di.app.App[user_tests.AppContainer]"',
    'Revealed type is "plugin_di.di.app.App[user_tests.AppContainer]"',
    'Revealed type is "plugin_di.di.app.App[user_tests.AppContainer]"',
    'Revealed type is "plugin_di.di.app.App[user_tests.AppContainer]"',
    'Revealed type is "plugin_di.testing.Overrides"',
]


# Checking the user's module means analysing what it imports (plugin_di, dependency-injector,
# connectrpc, protobuf, pydantic): seconds the first time, so the cache outlives the test.
CACHE = Path(__file__).resolve().parents[2] / ".mypy_cache" / "user-typing"


def expected_errors(code: str) -> set[tuple[int, str]]:
    return {
        (number, match.group(1))
        for number, line in enumerate(code.splitlines(), 1)
        if (match := re.search(r"# E: ([\w-]+)$", line))
    }


def test_user_code_type_checks_under_strict_and_wrong_uses_fail(tmp_path: Path) -> None:
    (tmp_path / "user_tests.py").write_text(USER_CODE)
    out, err, _ = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--hide-error-context",
            "--show-error-codes",
            "--no-pretty",
            "--cache-dir",
            str(CACHE),
            "--config-file",
            "",
            str(tmp_path / "user_tests.py"),
        ]
    )
    assert err == ""
    lines = out.splitlines()
    revealed = [line.split(": note: ", 1)[1] for line in lines if "Revealed type" in line]
    assert revealed == REVEALED
    errors = {
        (int(m.group(1)), m.group(2))
        for line in lines
        if (m := re.search(r"user_tests\.py:(\d+): error: .*\[([\w-]+)\]$", line))
    }
    assert errors == expected_errors(USER_CODE), out
