"""A logger capability plugin: ``plugin-di serve examples.logger.plugin:plugin``.

It implements connect-plugin-go's ``capability.logger.v1.Logger``: each Log
call becomes one line ``[level] message k=v ...`` on the plugin's stderr
(through the ``examples.logger`` logging logger), fields sorted by key.
"""

from __future__ import annotations

import logging
from collections import deque

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from plugin_di.gen.capability.logger.v1 import logger_pb2 as pb
from plugin_di.gen.capability.logger.v1.logger_connect import (
    Logger,
    LoggerASGIApplication,
    LoggerClient,
)
from plugin_di.plugin.definition import Plugin, Service

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

log = logging.getLogger("examples.logger")


def format_entry(request: pb.LogRequest) -> str:
    """``[level] message k=v ...`` with the fields sorted by key."""
    fields = " ".join(f"{k}={v}" for k, v in sorted(request.fields.items()))
    return f"[{request.level}] {request.message}" + (f" {fields}" if fields else "")


class StderrLogger(Logger):
    """Writes each entry to the plugin's log; keeps the last ``keep`` entries for inspection."""

    def __init__(self, keep: int = 100) -> None:
        self.received: deque[pb.LogRequest] = deque(maxlen=keep)

    @property
    def recent(self) -> list[str]:
        """The kept entries as the lines written to the log."""
        return [format_entry(request) for request in self.received]

    async def log(
        self, request: pb.LogRequest, ctx: RequestContext[pb.LogRequest, pb.LogResponse]
    ) -> pb.LogResponse:
        level = LEVELS.get(request.level.lower())
        if level is None:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"unknown log level {request.level!r}: use one of {', '.join(LEVELS)}",
            )
        kept = pb.LogRequest()
        kept.CopyFrom(request)
        self.received.append(kept)
        log.log(level, "%s", format_entry(request))
        return pb.LogResponse()


def make_plugin() -> Plugin:
    """A logger plugin with its own StderrLogger."""
    return Plugin(
        name="logger",
        version="1.0.0",
        services=[Service(LoggerASGIApplication, LoggerClient, impl=StderrLogger(), type="logger")],
    )


plugin = make_plugin()
