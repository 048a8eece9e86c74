"""The zygote process: import the plugin runtime once, then fork plugins on request.

Started by `plugin_di.launch.zygote.Zygote.start` as ``python -m plugin_di.launch.zygote._main
REQUIRED... [-- OPTIONAL...]``. It imports the required modules (any failure is reported and
ends it), then the optional ones (best effort: a plugin's own modules; one that fails is
imported again, and fails visibly, in the plugin), warms the runtime's caches, freezes the
garbage collector's view of everything imported so far (a forked child's collections then
never touch, and so never copy, the zygote's pages), says ready and serves fork requests.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

CTRL_FD_ENV = "PLUGIN_DI_ZYGOTE_FD"
MAX_MESSAGE = 1 << 20
MAX_FDS = 16
OPTIONAL_MARK = "--"


PLUGIN_NAME_ENV = "PLUGIN_DI_PLUGIN_NAME"  # plugin_di.plugin.env.PLUGIN_NAME, not imported

CHILD_FAILED = 70
"""A forked child's exit code when it fails before its program runs (EX_SOFTWARE)."""


def _serve(ctrl: socket.socket) -> int:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    with selectors.DefaultSelector() as selector:
        selector.register(ctrl, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj is ctrl:
                    try:
                        data, fds, _flags, _addr = socket.recv_fds(ctrl, MAX_MESSAGE, MAX_FDS)
                    except OSError:
                        return 0
                    if not data:
                        return 0  # the host closed its end
                    _fork(ctrl, json.loads(data), fds, (selector, wake_r, wake_w))
                else:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    _reap(ctrl)


def _reap(ctrl: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(ctrl, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _send(ctrl: socket.socket, event: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        ctrl.send(json.dumps(event).encode())


def _fork(
    ctrl: socket.socket, request: dict[str, Any], fds: list[int], own: tuple[Any, int, int]
) -> None:
    targets = [int(t) for t in request.get("targets", [])]
    if len(targets) != len(fds):
        for fd in fds:
            os.close(fd)
        _send(ctrl, {"error": f"{len(fds)} descriptors arrived for {len(targets)} targets"})
        return
    try:
        pid = os.fork()
    except OSError as exc:
        _send(ctrl, {"error": f"fork failed: {exc.strerror}"})
        pid = -1
    if pid == 0:
        code = CHILD_FAILED
        try:
            selector, wake_r, wake_w = own
            selector.close()
            ctrl.close()
            os.close(wake_r)
            os.close(wake_w)
            code = _child(request, fds, targets)
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    if pid > 0:
        _send(ctrl, {"pid": pid})


def _child(request: dict[str, Any], fds: list[int], targets: list[int]) -> int:
    """In the forked child: become the plugin process, run its module, return its exit code."""
    import io
    import runpy

    gc.enable()  # the zygote's own objects stay frozen: collections here never touch them
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setpgid(0, 0)
    high = [_dup_high(fd) for fd in fds]  # out of the way, so no dup2 clobbers another
    for fd, target in zip(high, targets, strict=True):
        os.dup2(fd, target)
    for fd in set(high) - set(targets):
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), write_through=True, errors="backslashreplace"
    )
    name = request["env"].get(PLUGIN_NAME_ENV) or request["module"]
    _set_title(f"plugin-di: plugin {name} ({request['module']})")
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [request["cwd"], *extra, *(p for p in sys.path[1:] if p not in extra)]
    sys.argv = [request["module"], *request["args"]]
    code: int
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException as exc:
        _print_traceback(exc)
        code = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    return code


def _set_title(title: str) -> None:
    """Name this process in ``ps`` (its command line, ``/proc/PID/cmdline``): every process
    forked from a zygote would otherwise show the zygote's command line."""
    try:
        from setproctitle import setproctitle
    except ImportError:  # a platform without the wheel: the title is only cosmetic
        return
    setproctitle(title)


def _print_traceback(error: BaseException) -> None:
    """Print ``error`` as ``python -m MODULE`` would: the zygote's own frames (this module's,
    runpy's) are not the user's, so they are left out."""
    import traceback

    te = traceback.TracebackException.from_exception(error)
    stack = list(te.stack)
    while stack and (stack[0].filename == __file__ or "runpy" in stack[0].filename):
        stack.pop(0)
    te.stack = traceback.StackSummary.from_list(stack)
    print("".join(te.format()), end="", file=sys.stderr)


def _dup_high(fd: int, lowest: int = 256) -> int:
    """A copy of ``fd`` numbered ``lowest`` or above; the original is closed."""
    import fcntl

    copy = fcntl.fcntl(fd, fcntl.F_DUPFD, lowest)
    os.close(fd)
    return copy


def _warm() -> None:
    """Fill the plugin runtime's per-process caches, so no forked plugin fills them again."""
    if "plugin_di.plugin.runtime" not in sys.modules:
        return
    from plugin_di.plugin.definition import service_descriptor
    from plugin_di.plugin.reflection import reflection_descriptors
    from plugin_di.plugin.runtime import _RUNTIME_CLIENTS

    reflection_descriptors([service_descriptor(c) for c in _RUNTIME_CLIENTS])


def main(argv: Sequence[str]) -> int:
    """The zygote process: import ``argv`` (modules), say ready, fork on request."""
    gc.disable()  # no collections while importing: no freed holes in pages children share
    _set_title("plugin-di: zygote")  # imports setproctitle before any fork, too
    ctrl = socket.socket(fileno=int(os.environ.pop(CTRL_FD_ENV)))
    args = list(argv)
    cut = args.index(OPTIONAL_MARK) if OPTIONAL_MARK in args else len(args)
    required, optional = args[:cut], args[cut + 1 :]
    try:
        for module in required:
            importlib.import_module(module)
    except Exception as exc:
        _send(ctrl, {"error": f"cannot import {module}: {exc!r}"})
        return 1
    skipped = []
    for module in optional:
        try:
            importlib.import_module(module)
        except Exception as exc:  # the plugin imports it again itself, and reports the error
            skipped.append(f"{module}: {exc!r}")
    with contextlib.suppress(Exception):
        _warm()
    from plugin_di.plugin.parent_watch import set_parent_death_signal

    set_parent_death_signal(signal.SIGKILL)  # the zygote has nothing to save; its host is gone
    gc.freeze()
    _send(ctrl, {"ready": True, "skipped": skipped})
    return _serve(ctrl)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
