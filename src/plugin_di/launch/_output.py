"""A plugin process's output lines: logged, and the last stderr lines kept for errors.

While the plugin starts, its last stderr lines are held back: if it fails to start they
are told once, in the `PluginStartError` (its traceback, usually), instead of twice (logged
as they came, then again in the error). Older lines, and every line once it started, are
logged as they come; nothing is dropped.
"""

from __future__ import annotations

import collections
import logging

from plugin_di.launch._logs import forward_line


class PluginOutput:
    """Where one plugin process's output goes: its logger, and a tail of its stderr."""

    def __init__(
        self, logger: logging.Logger, name: str, tail_lines: int, *, hold: bool = True
    ) -> None:
        """``hold``: hold the last stderr lines back until `release` (see the module)."""
        self._logger = logger
        self._name = name
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._held: collections.deque[str] | None = collections.deque() if hold else None
        self._hold = tail_lines

    @property
    def tail(self) -> list[str]:
        """The last stderr lines (at most ``tail_lines``)."""
        return list(self._tail)

    def line(self, stream: str, text: str) -> None:
        """One line the plugin wrote on ``stream`` (``stdout`` or ``stderr``)."""
        held = self._held
        if stream == "stderr":
            self._tail.append(text)
            if held is not None:
                held.append(text)
                if len(held) > self._hold:  # out of the tail: it would be told nowhere else
                    forward_line(self._logger, self._name, "stderr", held.popleft())
                return
        forward_line(self._logger, self._name, stream, text)

    def claim(self) -> list[str]:
        """The tail, for a start error that tells it: the held lines are told there, so
        they are not logged too."""
        if self._held is not None:
            self._held.clear()
        return self.tail

    def release(self) -> None:
        """The start is over: log the lines still held, and every line from now on."""
        held, self._held = self._held, None
        for text in held or ():
            forward_line(self._logger, self._name, "stderr", text)
