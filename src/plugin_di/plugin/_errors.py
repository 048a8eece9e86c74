"""Errors as a direct-dispatch caller sees them: exactly as over HTTP.

Served plugins put `plugin_di.rpc.errors.SanitizeErrors` first in every
chain, so an exception that is not a ConnectError leaves as a generic
INTERNAL. `client_error` applies the same rule to whatever still escapes a
direct dispatch, and rebuilds a ConnectError as a remote client decodes it (a
fresh object; details as packed Any).
"""

from __future__ import annotations

import logging

from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from protobuf.wkt import Any as AnyPb

from plugin_di.rpc.errors import INTERNAL_MESSAGE, TYPE_URL_PREFIX

log = logging.getLogger("plugin_di.plugin")


def client_error(exc: BaseException, where: str) -> ConnectError:
    """What a caller sees for an exception raised on the server side of ``where``."""
    if isinstance(exc, ConnectError):
        details = [
            ErrorDetail(AnyPb(type_url=TYPE_URL_PREFIX + d.type_name, value=d.message_bytes))
            for d in exc.details
        ]
        return ConnectError(exc.code, exc.message, details)
    log.error("%s failed; the caller got INTERNAL", where, exc_info=exc)
    return ConnectError(Code.INTERNAL, INTERNAL_MESSAGE)
