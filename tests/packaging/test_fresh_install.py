"""plugin-di as a user gets it: the wheel's contents, and the installed package used from a
separate project (the console script, a small app, its type check, the pytest plugin)."""

from __future__ import annotations

from pathlib import Path

from tests.packaging.support import REPO, UserProject, wheel_names, wheel_text

INDEX = REPO / "docs" / "index.md"


def _index_example() -> tuple[str, list[str]]:
    """The start page's ``app.py`` (its first Python block) and the output it shows."""
    text = INDEX.read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    shown = text.split("```console\n$ python app.py\n", 1)[1].split("```", 1)[0]
    return code, shown.splitlines()


def test_the_wheel_holds_the_license_types_and_entry_points(wheel: Path) -> None:
    names = wheel_names(wheel)
    assert "plugin_di/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)[-8:]
    entry_points = wheel_text(wheel, ".dist-info/entry_points.txt")
    assert "[console_scripts]\nplugin-di = plugin_di.cli:main" in entry_points
    assert "[pytest11]\nplugin_di = plugin_di.pytest_plugin" in entry_points
    metadata = wheel_text(wheel, ".dist-info/METADATA")
    assert "License-Expression: Apache-2.0" in metadata
    for version in ("3.11", "3.12", "3.13"):
        assert f"Classifier: Programming Language :: Python :: {version}" in metadata
    assert "Project-URL: Documentation," in metadata
    assert "Project-URL: Changelog," in metadata
    # nothing of the repository's own tree beside the package
    assert not [n for n in names if n.split("/")[0] in {"tests", "bench", "examples", "docs"}]


def test_the_package_imported_is_the_installed_one(user_project: UserProject) -> None:
    where = user_project.run("python", "-c", "import plugin_di; print(plugin_di.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(user_project.venv.root)


def test_the_console_script_runs(user_project: UserProject) -> None:
    helped = user_project.run("plugin-di", "--help")
    assert "usage: plugin-di" in helped.stdout
    for command in ("check", "graph", "run", "serve", "host"):
        assert command in helped.stdout


def test_the_start_pages_app_runs_and_type_checks(user_project: UserProject) -> None:
    code, shown = _index_example()
    user_project.write("app.py", code)
    ran = user_project.run("python", "app.py")
    assert ran.stdout.splitlines() == shown
    assert shown == ["database: connected", "api: listening", "api: stopped", "database: closed"]
    checked = user_project.mypy_strict("app.py")
    assert "Success: no issues found in 1 source file" in checked.stdout


def test_mypy_strict_catches_a_misuse_of_the_installed_api(user_project: UserProject) -> None:
    """The type check above is real: the installed package's types reach the user's code."""
    user_project.write(
        "wrong.py",
        """
        from plugin_di import App

        App(42).start(timeout="soon")
        """,
    )
    checked = user_project.mypy_strict("wrong.py", check=False)
    assert checked.returncode == 1, checked.stdout
    assert "wrong.py:3: error" in checked.stdout


def test_pytest_finds_the_plugins_fixtures_through_its_entry_point(
    user_project: UserProject,
) -> None:
    user_project.write(
        "test_user.py",
        """
        from dependency_injector import containers, providers


        class Container(containers.DeclarativeContainer):
            greeting = providers.Object("hello")


        def test_override(di_override):
            container = Container()
            di_override(container, greeting="fake")
            assert container.greeting() == "fake"
        """,
    )
    ran = user_project.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py")
    assert "1 passed" in ran.stdout
