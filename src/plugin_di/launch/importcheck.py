"""Does a process plugin's code import? Checked in a child process, as it would be launched.

``plugin-di check --build`` asks this of every process plugin: the ``-m`` module (a
package's ``__main__``) is imported by the plugin's interpreter, in its ``cwd`` with its
environment, in a new process group that is killed once the check ends, so a module that
hangs or starts something leaves nothing running. Importing does not serve: a module
serves when it runs as ``__main__``. A command that is not ``python -m MODULE`` is only
looked up (found, executable).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass

from plugin_di.launch.config import LaunchConfig

__all__ = ["ImportCheck", "check_imports"]

# Run by the plugin's interpreter, which may not have plugin-di: the standard library only.
_IMPORT = """\
import importlib, importlib.util, sys, traceback
name = sys.argv[1]
try:
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    if spec.submodule_search_locations is not None:
        name += ".__main__"
    importlib.import_module(name)
except BaseException as exc:
    te = traceback.TracebackException.from_exception(exc)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if f.filename != "<string>" and "importlib" not in f.filename]
    )
    print("".join(te.format()), end="", file=sys.stderr)
    sys.exit(1)
"""


@dataclass(frozen=True)
class ImportCheck:
    """What checking one plugin found. ``ok``: it imports (or its executable exists)."""

    plugin: str
    command: str
    ok: bool
    detail: str
    """One line when ``ok``; else why not (the import's traceback, without the checker's
    frames)."""


def check_imports(config: LaunchConfig, *, timeout: float = 30.0) -> ImportCheck:
    """Import the module of ``config.command`` in a child process (see the module)."""
    command = list(config.command)
    shown = shlex.join(command)
    if len(command) < 3 or command[1] != "-m":
        return _check_executable(config.name, command, config.cwd)
    env = dict(os.environ) if config.inherit_env else {}
    env.update(config.env)
    try:
        child = subprocess.Popen(
            [command[0], "-c", _IMPORT, command[2]],
            cwd=config.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        return ImportCheck(config.name, shown, False, f"cannot execute: {exc}")
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        return ImportCheck(
            config.name, shown, False, f"importing {command[2]} did not end within {timeout:g} s"
        )
    finally:
        _kill_group(child)  # what the import may have started
    if child.returncode != 0:
        why = err.rstrip() or f"exit code {child.returncode}"
        return ImportCheck(config.name, shown, False, why)
    return ImportCheck(config.name, shown, True, f"{command[2]} imports")


def _check_executable(name: str, command: list[str], cwd: str | None) -> ImportCheck:
    shown = shlex.join(command)
    program = command[0]
    if cwd and os.sep in program and not os.path.isabs(program):
        program = os.path.join(cwd, program)
    found = shutil.which(program)
    if found is None:
        return ImportCheck(name, shown, False, f"executable {command[0]!r} not found")
    return ImportCheck(name, shown, True, f"executable {found} (not a Python module: not imported)")


def _kill_group(child: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)
    if child.stderr is not None:
        child.stderr.close()
