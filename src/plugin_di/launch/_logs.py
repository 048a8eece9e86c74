"""Plugin output to host logging: one record per line, tagged with the plugin name.

A line that is a JSON object keeps its level and fields (hclog's ``@level`` /
``@message``, structlog's ``level`` / ``event``, python-json-logger's
``levelname`` / ``message`` are recognised); any other line is logged at INFO.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

LOGGER_PREFIX = "plugin_di.plugins"

_LEVEL_KEYS = ("@level", "level", "levelname", "severity", "lvl")
_MESSAGE_KEYS = ("@message", "message", "msg", "event")
_TIME_KEYS = frozenset({"@timestamp", "timestamp", "time", "ts", "asctime"})
_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "err": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


def plugin_logger(name: str) -> logging.Logger:
    """The logger a plugin's output goes to: ``plugin_di.plugins.<name>``."""
    return logging.getLogger(f"{LOGGER_PREFIX}.{name}")


_TEXT_LEVEL = re.compile(r"^\[?(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\]?[\s:|]")


def parse_line(line: str) -> tuple[int, str, dict[str, Any]]:
    """Level, message and extra fields of one output line.

    A text line that starts with a level name (``WARNING:name:msg``, ``[ERROR] msg``,
    Python logging's usual formats) keeps that level too.
    """
    text = line.rstrip("\r\n")
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            level = logging.INFO
            for key in _LEVEL_KEYS:
                raw = data.pop(key, None)
                if isinstance(raw, str):
                    level = _LEVELS.get(raw.lower(), logging.INFO)
                    break
                if isinstance(raw, int) and raw in logging.getLevelNamesMapping().values():
                    level = raw
                    break
            message = ""
            for key in _MESSAGE_KEYS:
                raw = data.pop(key, None)
                if raw is not None:
                    message = str(raw)
                    break
            return level, message, data
    match = _TEXT_LEVEL.match(text)
    if match:
        return _LEVELS[match.group(1).lower()], text, {}
    return logging.INFO, text, {}


def forward_line(logger: logging.Logger, plugin: str, stream: str, line: str) -> None:
    """Log one line of a plugin's ``stream`` (``stdout`` or ``stderr``)."""
    level, message, fields = parse_line(line)
    if not message and not fields:
        return
    rendered = " ".join(f"{k}={v}" for k, v in fields.items() if k not in _TIME_KEYS)
    logger.log(
        level,
        "[%s] %s%s",
        plugin,
        message,
        f" {rendered}" if rendered else "",
        extra={"plugin": plugin, "stream": stream, "fields": fields},
    )
