"""Log output of the ``plugin-di`` commands: text for people, or one JSON object per line.

``PLUGIN_DI_LOG_FORMAT=json`` makes every record (plugin-di's events, a plugin's forwarded
output, the host's, the user's own loggers) one JSON object on one line, with
``timestamp`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``; a lifecycle event
adds its ``event`` name and fields, a plugin's line its ``plugin`` and ``stream`` (and the
fields of a JSON line it wrote), an exception its ``exception`` text. The text format
starts each line with the time, the level and the logger.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, Literal, TextIO

__all__ = ["TEXT_FORMAT", "JSONFormatter", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

EVENT_ATTRIBUTE = "plugin_di_event"
"""The `logging.LogRecord` attribute where the logging sink puts the event it logs."""

_RESERVED = ("timestamp", "level", "logger", "message")


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ``timestamp``, ``level``, ``logger``, ``message``, then
    the record's structured fields (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {}
        event = getattr(record, EVENT_ATTRIBUTE, None)
        if event is not None:
            out.update(event.to_dict())
            message = event.message()
        else:
            message = record.getMessage()
        plugin = getattr(record, "plugin", None)
        if isinstance(plugin, str):
            fields = getattr(record, "fields", None)
            if isinstance(fields, dict):
                out.update({str(k): v for k, v in fields.items()})
            out["plugin"] = plugin
            out["stream"] = getattr(record, "stream", "")
        for key in _RESERVED:
            out.pop(key, None)
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        head = {
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps({**head, **out}, default=str, ensure_ascii=False)


def configure_logging(
    level: str | int = "INFO",
    log_format: Literal["text", "json"] = "text",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Log every record of ``level`` and above to ``stream`` (stderr) in ``log_format``.

    Replaces the root logger's handlers (as ``logging.basicConfig(force=True)``); returns
    the handler.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
