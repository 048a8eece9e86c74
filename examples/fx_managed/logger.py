"""The logger plugin of the example: ``capability.logger.v1.Logger`` into Python logging.

It keeps the last records it received, so the demo can show who logged what.
"""

from __future__ import annotations

import collections
import logging

from connectrpc.request import RequestContext

from plugin_di.gen.capability.logger.v1.logger_connect import (
    Logger,
    LoggerASGIApplication,
    LoggerClient,
)
from plugin_di.gen.capability.logger.v1.logger_pb2 import LogRequest, LogResponse
from plugin_di.plugin.definition import Plugin, Service

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING}


class RecordingLogger(Logger):
    """Writes each record to the ``fx_managed.logger`` logger and keeps the last 100."""

    def __init__(self) -> None:
        self.records: collections.deque[LogRequest] = collections.deque(maxlen=100)
        self._log = logging.getLogger("fx_managed.logger")

    async def log(
        self, request: LogRequest, ctx: RequestContext[LogRequest, LogResponse]
    ) -> LogResponse:
        kept = LogRequest()
        kept.CopyFrom(request)
        self.records.append(kept)
        fields = " ".join(f"{k}={v}" for k, v in sorted(request.fields.items()))
        level = _LEVELS.get(request.level.lower(), logging.ERROR)
        self._log.log(level, "%s %s", request.message, fields)
        return LogResponse()


def make_plugin() -> Plugin:
    """A logger plugin with a fresh record buffer."""
    return Plugin(
        name="logger",
        services=[Service(LoggerASGIApplication, LoggerClient, impl=RecordingLogger())],
    )
