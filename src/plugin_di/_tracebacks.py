"""The user's part of a traceback: plugin-di's own frames and the machinery's are left out.

A hook that raises, a provider that fails to build, a module that fails to import: the
user needs the file and line in *their* code, once, not the lifecycle engine's frames.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import runpy
import traceback

_HIDDEN_DIRS = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,  # plugin_di itself
    os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep,
    os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep,
)
_HIDDEN_FILES = frozenset(
    {
        os.path.abspath(runpy.__file__),
        "<frozen runpy>",
        "<frozen importlib._bootstrap>",
        "<frozen importlib._bootstrap_external>",
    }
)


_HIDDEN_PACKAGE = "dependency_injector" + os.sep  # providers calling the user's constructors


def _shown(filename: str) -> bool:
    return (
        filename not in _HIDDEN_FILES
        and not filename.startswith(_HIDDEN_DIRS)
        and _HIDDEN_PACKAGE not in filename
    )


def user_traceback(error: BaseException, *, with_message: bool = False) -> list[str]:
    """The traceback of ``error`` (and its causes) without plugin-di's and asyncio's frames.

    Lines as Python prints them, without line ends. The last lines, ``Type: message``,
    are left out unless ``with_message`` (the caller has said it already). Empty when no
    frame of the error itself is left (an error plugin-di raised tells its own story).
    """
    te = traceback.TracebackException.from_exception(error)
    seen: set[int] = set()
    frames = 0
    node: traceback.TracebackException | None = te
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        node.stack = traceback.StackSummary.from_list(
            [frame for frame in node.stack if _shown(frame.filename)]
        )
        frames += len(node.stack)
        node = node.__cause__ or (None if node.__suppress_context__ else node.__context__)
    if not frames:
        return []
    lines = "".join(te.format(chain=True)).splitlines()
    if not with_message:
        message = "".join(te.format_exception_only()).splitlines()
        lines = lines[: len(lines) - len(message)]
    return lines
