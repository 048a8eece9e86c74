"""``PLUGIN_DI_OTEL=1``: a process (a plugin, a standalone host, ``plugin-di run``) traces and
measures with OpenTelemetry, its exporters chosen by the standard ``OTEL_*`` variables.

`observed_from_env` imports `plugin_di.otel` only when the variable asks for it, so a
process without it never loads OpenTelemetry.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping

from plugin_di.rpc.telemetry import ENV_SWITCH, enabled_in
from plugin_di.rpc.telemetry import current as current_telemetry

__all__ = ["observed_from_env"]


@contextlib.contextmanager
def observed_from_env(environ: Mapping[str, str], service_name: str) -> Iterator[None]:
    """Instrument for the ``with`` block when ``environ`` sets `ENV_SWITCH` and nothing is
    instrumented yet (then `plugin_di.otel.instrument_from_env`, ``service_name`` the
    default ``OTEL_SERVICE_NAME``); export what is pending when the block ends. Without
    the otel extra installed, a warning on stderr, and the block runs uninstrumented."""
    if not enabled_in(environ) or current_telemetry() is not None:
        yield
        return
    try:
        from plugin_di.otel import instrument_from_env
    except ModuleNotFoundError as missing:
        print(f"{ENV_SWITCH} is set but {missing}: running without it", file=sys.stderr)
        yield
        return
    instrumentation = instrument_from_env(environ, service_name=service_name)
    try:
        yield
    finally:
        instrumentation.shutdown()
