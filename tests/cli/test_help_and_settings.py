"""``--version``, the top-level ``--help``, and the settings reference generated from Settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugin_di._version import __version__
from plugin_di.cli import _COMMANDS, main
from plugin_di.cli._settings_doc import (
    COMMAND_SETTINGS,
    GROUPS,
    PROCESS_VARIABLES,
    all_settings,
    render_markdown,
)
from plugin_di.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_console_script_prints_its_version() -> None:
    script = Path(sys.executable).with_name("plugin-di")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "plugin_di.cli"]
    result = subprocess.run(
        [*command, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout) == (0, f"plugin-di {__version__}\n")


def test_top_level_help_names_every_command_with_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name, (_, help_text) in _COMMANDS.items():
        assert name in out
        assert help_text in out
    assert "examples:\n  plugin-di check myapp.main:Container" in out
    assert "Documentation: " in out


@pytest.mark.parametrize("command", sorted(COMMAND_SETTINGS))
def test_command_help_ends_with_the_settings_it_reads(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    epilog = out.split("environment (every setting: plugin-di settings):\n", 1)[1]
    known = all_settings()
    for name in COMMAND_SETTINGS[command]:
        assert f"  {known[name].name}" in epilog


def test_every_settings_field_is_documented_in_a_group() -> None:
    grouped = [name for _, names in GROUPS for name in names]
    assert sorted(grouped) == sorted(Settings.model_fields)
    assert len(grouped) == len(set(grouped))
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"
    for variable in PROCESS_VARIABLES:
        assert variable.name.startswith("PLUGIN_DI_")
        assert variable.description


def test_docs_settings_md_is_generated_from_settings() -> None:
    docs = ROOT / "docs" / "settings.md"
    assert docs.read_text() == render_markdown(), (
        "docs/settings.md is out of date: plugin-di settings --markdown > docs/settings.md"
    )
    for name in Settings.model_fields:
        assert f"`PLUGIN_DI_{name.upper()}`" in docs.read_text()


def test_settings_check_fails_on_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "settings.md"
    stale.write_text(render_markdown().replace("`15`", "`16`", 1))
    assert main(["settings", "--check", str(stale)]) == 1
    assert "is out of date" in capsys.readouterr().err
    stale.write_text(render_markdown())
    assert main(["settings", "--check", str(stale)]) == 0


def test_settings_lists_every_variable_with_its_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGIN_DI_START_TIMEOUT", "99")  # the defaults, not the environment
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "  PLUGIN_DI_START_TIMEOUT (default 15)\n" in out
    assert "  PLUGIN_DI_STORE (default memory://)\n" in out
    assert "  PLUGIN_DI_JOIN_TOKEN\n" in out
    assert os.environ["PLUGIN_DI_START_TIMEOUT"] == "99"


def test_docs_cli_md_describes_every_command() -> None:
    page = (ROOT / "docs" / "cli.md").read_text()
    for name in _COMMANDS:
        assert f"| `{name}" in page, f"docs/cli.md has no row for plugin-di {name}"
    for code, meaning in ((0, "SERVING"), (2, "connection failed"), (4, "not `SERVING`")):
        assert f"| {code} | " in page
        assert meaning in page
