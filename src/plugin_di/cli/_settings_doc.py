"""Every ``PLUGIN_DI_*`` setting, rendered from `Settings` for docs/settings.md and ``--help``.

`Settings` fields give the name, default and description; `GROUPS` only sorts them under a
title (a test fails when a field is in no group). The variables of a plugin process that are
not `Settings` fields (what a launching host sets, read without pydantic for a fast start)
are in `PROCESS_VARIABLES`, named by the constants their readers use.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugin_di.plugin import env
from plugin_di.plugin.security import REQUIRE_AUTH

PREFIX = "PLUGIN_DI_"


@dataclass(frozen=True)
class EnvSetting:
    """One environment variable: its name, default (as text) and what it does."""

    name: str
    default: str
    description: str


GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "App lifecycle",
        (
            "start_timeout",
            "stop_timeout",
            "hook_timeout",
            "progress_interval",
            "log_level",
            "log_format",
            "event_loop",
        ),
    ),
    (
        "Plugins",
        ("max_message_bytes", "plugin_start_timeout", "shutdown_grace", "zygote"),
    ),
    (
        "Every listener (plugins and hosts)",
        ("header_timeout", "idle_timeout", "max_connections", "max_streams", "max_header_bytes"),
    ),
    (
        "Host platform",
        ("runtime_token_ttl", "capability_grant_ttl", "rate_limit_rps", "rate_limit_burst"),
    ),
    ("Host platform state", ("store", "lease_ttl", "store_sync_interval")),
    (
        "Host admission",
        (
            "admission_key_file",
            "admission_allow",
            "admission_allow_cert",
            "admission_client_ca",
            "open_registration",
        ),
    ),
    ("Observability", ("otel",)),
)

PROCESS_GROUP = "Plugin process environment"
PROCESS_VARIABLES: tuple[EnvSetting, ...] = (
    EnvSetting(
        env.HOST_URL,
        "",
        "URL of the host platform a served plugin joins once it serves (several hosts of one "
        "platform: a comma-separated list, the first tried first)",
    ),
    EnvSetting(
        env.JOIN_TOKEN,
        "",
        "the credential sent on the handshake with the host (a join token from "
        "'plugin-di join-token', or the launch secret of an app's host); 'plugin-di ls' sends "
        "it too",
    ),
    EnvSetting(
        env.BASE_URL,
        "",
        "the URL hosts reach this plugin at, when it is not the address it listens on "
        "(a container bound to 0.0.0.0: http://kv:8080)",
    ),
    EnvSetting(
        env.HEARTBEAT_INTERVAL,
        "",
        "seconds between a joined plugin's heartbeats (default: a third of the lease the host "
        "announces, else 10)",
    ),
    EnvSetting(
        REQUIRE_AUTH,
        "",
        "1: callers of the plugin's own services must present the launch secret (set by the "
        "launcher)",
    ),
    EnvSetting(env.LAUNCH_SECRET, "", "per-launch secret (set by the launcher)"),
    EnvSetting(
        env.PARENT_PIPE_FD,
        "",
        "inherited pipe whose end-of-file means the launching app died (set by the launcher)",
    ),
    EnvSetting(env.PLUGIN_NAME, "", "the plugin's name, for logs (set by the launcher)"),
)

_ALL_SETTINGS = tuple(name for _, names in GROUPS for name in names)
_BY_TITLE = dict(GROUPS)
_LISTENER = _BY_TITLE["Every listener (plugins and hosts)"]
_HOST = _BY_TITLE["Host platform"] + _BY_TITLE["Host platform state"] + _BY_TITLE["Host admission"]

# command -> the settings it reads (Settings field names, or PROCESS_VARIABLES names)
COMMAND_SETTINGS: dict[str, tuple[str, ...]] = {
    "run": _ALL_SETTINGS,
    "serve": (
        "max_message_bytes",
        "shutdown_grace",
        "event_loop",
        "otel",
        *_LISTENER,
        "rate_limit_rps",
        "rate_limit_burst",
        *(v.name for v in PROCESS_VARIABLES),
    ),
    "host": ("event_loop", "otel", "max_message_bytes", *_LISTENER, *_HOST),
    "join-token": ("admission_key_file",),
    "ls": (env.JOIN_TOKEN,),
}


def _default_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return f"{value:.0f}"
    if isinstance(value, Path):
        return str(value)
    return str(value)


def settings_groups() -> list[tuple[str, list[EnvSetting]]]:
    """Every setting, grouped: the `Settings` fields, then the plugin process variables."""
    from plugin_di.settings import Settings

    fields = Settings.model_fields
    groups: list[tuple[str, list[EnvSetting]]] = []
    for title, names in GROUPS:
        entries = []
        for name in names:
            field = fields[name]
            entries.append(
                EnvSetting(
                    PREFIX + name.upper(),
                    _default_text(field.default),
                    field.description or "",
                )
            )
        groups.append((title, entries))
    groups.append((PROCESS_GROUP, list(PROCESS_VARIABLES)))
    return groups


def all_settings() -> dict[str, EnvSetting]:
    """Every setting by its variable name, and by its `Settings` field name."""
    found: dict[str, EnvSetting] = {}
    for _, entries in settings_groups():
        for entry in entries:
            found[entry.name] = entry
            found[entry.name.removeprefix(PREFIX).lower()] = entry
    return found


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown() -> str:
    """docs/settings.md: every setting in one table per group."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated from plugin_di.settings.Settings by `plugin-di settings --markdown`;",
        "     edit the field descriptions there, then regenerate this file. -->",
        "",
        "Every tunable of plugin-di is an environment variable with the prefix `PLUGIN_DI_`,",
        "read when a `Settings()` is built (an app, a host, `plugin-di run` and `host`).",
        "Durations are in seconds; booleans are `1`/`0` (or `true`/`false`). Code can pass a",
        "`Settings(...)` explicitly instead, e.g. `App(container, settings=Settings(...))`.",
        "A plugin process reads its variables itself, without pydantic, with the same names.",
        "",
        "`plugin-di settings` prints this list; `plugin-di COMMAND --help` ends with the",
        "settings that command reads.",
    ]
    for title, entries in settings_groups():
        lines += ["", f"## {title}", "", "| variable | default | what it does |", "|---|---|---|"]
        for entry in entries:
            default = f"`{entry.default}`" if entry.default else "(unset)"
            lines.append(f"| `{entry.name}` | {default} | {_md_cell(entry.description)} |")
    return "\n".join(lines) + "\n"


def _text_line(entry: EnvSetting) -> str:
    default = f" (default {entry.default})" if entry.default else ""
    described = textwrap.fill(
        entry.description, width=88, initial_indent=" " * 6, subsequent_indent=" " * 6
    )
    return f"  {entry.name}{default}\n{described}"


def render_text() -> str:
    """Every setting as plain text, for ``plugin-di settings``."""
    parts = []
    for title, entries in settings_groups():
        parts.append(f"{title}:\n" + "\n".join(_text_line(e) for e in entries))
    return "\n\n".join(parts) + "\n"


def command_epilog(command: str) -> str:
    """The ``--help`` epilog of a command: the settings it reads ('' when none)."""
    names = COMMAND_SETTINGS.get(command, ())
    if not names:
        return ""
    known = all_settings()
    lines = [_text_line(known[name]) for name in names]
    return "environment (every setting: plugin-di settings):\n" + "\n".join(lines)
