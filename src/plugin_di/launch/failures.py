"""How a plugin process ended, or why it never became ready, told to the user."""

from __future__ import annotations

import shlex
import signal
from collections.abc import Sequence


def describe_exit(code: int | None) -> str:
    """``exit code 3`` or ``killed by SIGKILL`` (asyncio reports signals as negative codes)."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class PluginStartError(RuntimeError):
    """A plugin process did not become ready; it is no longer running."""

    DEFAULT_HINT = (
        "check that the command serves a plugin (plugin_di.serve prints the handshake "
        "line), or raise plugin_start_timeout if it is only slow"
    )

    def __init__(
        self,
        name: str,
        reason: str,
        *,
        command: Sequence[str],
        exit_code: int | None,
        stderr_tail: Sequence[str],
        hint: str = DEFAULT_HINT,
    ) -> None:
        self.name = name
        self.reason = reason
        self.command = list(command)
        self.exit_code = exit_code
        self.stderr_tail = list(stderr_tail)
        tail = "\n".join(f"    {line}" for line in self.stderr_tail) or "    (nothing)"
        code = f" ({describe_exit(exit_code)})" if exit_code is not None else ""
        super().__init__(
            f"plugin {name!r} failed to start: {reason}{code}\n"
            f"  command: {shlex.join(self.command)}\n"
            f"  last stderr lines:\n{tail}\n"
            f"  {hint}"
        )
