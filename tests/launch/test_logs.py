"""Plugin output lines keep their level: JSON records and the usual text formats."""

from __future__ import annotations

import logging

import pytest

from plugin_di.launch._logs import parse_line


@pytest.mark.parametrize(
    ("line", "level", "message", "fields"),
    [
        ('{"@level":"warn","@message":"slow","ms":"30"}', logging.WARNING, "slow", {"ms": "30"}),
        (
            '{"level":"error","event":"boom","@timestamp":"t"}',
            logging.ERROR,
            "boom",
            {"@timestamp": "t"},
        ),
        ('{"levelname":"DEBUG","message":"x"}', logging.DEBUG, "x", {}),
        ('{"level": 40, "msg": "numeric"}', logging.ERROR, "numeric", {}),
        (
            "WARNING:plugin.kv:disk almost full",
            logging.WARNING,
            "WARNING:plugin.kv:disk almost full",
            {},
        ),
        (
            "ERROR plugin_di.plugin.server: failed",
            logging.ERROR,
            "ERROR plugin_di.plugin.server: failed",
            {},
        ),
        ("[DEBUG] tick", logging.DEBUG, "[DEBUG] tick", {}),
        ("just text", logging.INFO, "just text", {}),
        ("{not json", logging.INFO, "{not json", {}),
        ("INFORMATION is not a level", logging.INFO, "INFORMATION is not a level", {}),
    ],
)
def test_parse_line(line: str, level: int, message: str, fields: dict[str, str]) -> None:
    assert parse_line(line) == (level, message, fields)
