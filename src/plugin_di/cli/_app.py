"""Shared by ``check``, ``graph`` and ``run``: MODULE:ATTR to an App, with readable errors."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from plugin_di._tracebacks import user_traceback
from plugin_di.cli._target import TargetError, load_target

if TYPE_CHECKING:
    from plugin_di.di.app import App


class CommandError(Exception):
    """Printed on stderr; the command exits 1."""


def load_app(spec: str) -> App:
    """Import MODULE:ATTR and return it as an App (a container is wrapped in one)."""
    try:
        target = load_target(spec)
    except TargetError as exc:
        raise CommandError(str(exc)) from exc
    except Exception as exc:  # the module raised while importing (SyntaxError, ...)
        module = spec.partition(":")[0]
        where = "\n".join(f"  {line}" for line in user_traceback(exc))
        raise CommandError(
            f"cannot import module {module!r}: {type(exc).__name__}: {exc}"
            + (f"\n{where}" if where else "")
        ) from exc
    from plugin_di.di.app import app_from

    try:
        return app_from(target)
    except TypeError as exc:
        what = (
            f"the class {target.__qualname__}"
            if isinstance(target, type)
            else f"a {type(target).__name__}"
        )
        raise CommandError(
            f"{spec} names {what}, not an App or a dependency-injector container "
            "(a DeclarativeContainer class or instance)"
        ) from exc
    except Exception as exc:
        raise CommandError(f"{spec}: {type(exc).__name__}: {exc}") from exc


def fail(command: str, error: BaseException) -> int:
    print(f"plugin-di {command}: {error}", file=sys.stderr)
    return 1
