"""Plugin side: exit when the host dies, even when it dies by SIGKILL.

Two mechanisms, because neither alone is enough:

* Linux ``prctl(PR_SET_PDEATHSIG, SIGTERM)``: the kernel sends SIGTERM the moment
  the parent dies, so the plugin's ordinary graceful-stop path runs. (Strictly, when
  the parent *thread* that forked it exits: the launcher forks from the event loop's
  thread, which lives as long as the app.)
* End-of-file on an inherited pipe (``PLUGIN_DI_PARENT_PIPE_FD``): the host keeps
  the write end open for the plugin's lifetime and nobody else holds it, so EOF
  means the host is gone. It works on every POSIX system and also catches a
  parent that died before ``prctl`` was called.  Without the pipe, on Linux, a
  pidfd of the parent gives the same signal without polling.

When the watcher sees the death it calls ``on_death`` once (from a daemon thread)
and arms a hard exit: if the graceful path has not ended the process within
``hard_exit_after`` seconds, ``os._exit`` does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import select
import signal
import sys
import threading
from collections.abc import Callable

from plugin_di.plugin import env

PR_SET_PDEATHSIG = 1
HARD_EXIT_CODE = 70
DEFAULT_HARD_EXIT_AFTER = 1.5

_started = False
_lock = threading.Lock()


def set_parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies.

    Returns False where it is unsupported (not Linux, or no libc).
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """libc, looked up once per process (``find_library`` runs ``ldconfig``); a plugin forked
    from a warm zygote inherits the zygote's lookup."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _parent_pipe_fd() -> int | None:
    raw = os.environ.get(env.PARENT_PIPE_FD, "")
    if not raw:
        return None
    try:
        fd = int(raw)
        os.fstat(fd)
    except (ValueError, OSError):
        return None
    return fd


def _wait_pipe_eof(fd: int) -> None:
    while True:
        try:
            data = os.read(fd, 4096)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return


def _parent_pidfd() -> int | None:
    ppid = os.getppid()
    if ppid <= 1 or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(ppid)
    except OSError:
        return None


def _wait_pidfd(pidfd: int) -> None:
    while True:
        try:
            readable, _, _ = select.select([pidfd], [], [])
        except InterruptedError:
            continue
        if readable:
            return


def _on_parent_gone(on_death: Callable[[], None], hard_exit_after: float) -> None:
    timer = threading.Timer(hard_exit_after, os._exit, args=(HARD_EXIT_CODE,))
    timer.daemon = True
    timer.start()
    try:
        on_death()
    except BaseException:
        os._exit(HARD_EXIT_CODE)


def watch_parent(
    on_death: Callable[[], None], *, hard_exit_after: float = DEFAULT_HARD_EXIT_AFTER
) -> None:
    """Make this process exit when the process that launched it dies.

    ``on_death`` should start a graceful stop and must be thread-safe (use
    ``loop.call_soon_threadsafe``); it is called at most once. The SIGTERM from
    ``PR_SET_PDEATHSIG`` goes to whatever SIGTERM handler the process installed.
    Calling ``watch_parent`` again in the same process does nothing.
    """
    global _started
    with _lock:
        if _started:
            return
        _started = True
    set_parent_death_signal(signal.SIGTERM)
    fd = _parent_pipe_fd()
    if fd is not None:
        waiter: Callable[[], None] = lambda: _wait_pipe_eof(fd)  # noqa: E731
    else:
        pidfd = _parent_pidfd()
        if pidfd is None:
            return
        waiter = lambda: _wait_pidfd(pidfd)  # noqa: E731

    def run() -> None:
        waiter()
        _on_parent_gone(on_death, hard_exit_after)

    threading.Thread(target=run, name="plugin-di-parent-watch", daemon=True).start()
