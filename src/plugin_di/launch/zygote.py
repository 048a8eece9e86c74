"""A warm pre-forked launcher: one process that has imported the plugin runtime forks plugins.

Starting a plugin is mostly imports (connectrpc, protobuf, the server: ~200 ms). The zygote
pays them once; each plugin is then a ``fork()`` of it (a few ms) that runs the plugin's
``python -m MODULE ARGS`` in place. The forked child behaves like a spawned one:

* its stdin/stdout/stderr are pipes the host made (so stdout carries its own handshake
  line and stderr is forwarded), passed to the zygote with ``SCM_RIGHTS``;
* its environment and working directory are the ones the host asked for, and other
  inherited descriptors (the parent-death pipe, ``PLUGIN_DI_PARENT_PIPE_FD``) keep their
  numbers, so the plugin's parent-death watch sees the host die;
* it leads its own process group (``os.killpg`` reaches it, like ``process_group=0``);
* its exit code reaches the host (`ZygoteChild.wait`, negative for a signal, as asyncio's).

The host talks to the zygote over a ``SOCK_SEQPACKET`` socket pair: one JSON message per
request or event. When the host goes away (the socket closes) the zygote exits; its
children keep running until their own parent-death watch stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_PRELOAD", "Zygote", "ZygoteChild", "ZygoteError"]

DEFAULT_PRELOAD = (
    "plugin_di.plugin.server",
    "plugin_di.rpc.fastserve",
    "plugin_di.cli.serve",
    "uvicorn",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "uvloop",
)
"""Modules a zygote imports before forking: the plugin runtime and the fast-channel server."""

_CTRL_FD_ENV = "PLUGIN_DI_ZYGOTE_FD"
_MAX_MESSAGE = 1 << 20
_MAX_FDS = 16


class ZygoteError(RuntimeError):
    """The zygote could not start, or could not fork a plugin."""


def _module_argv(command: Sequence[str]) -> tuple[str, list[str]]:
    """``[python, "-m", MODULE, *ARGS]`` -> (MODULE, ARGS); other commands cannot be forked."""
    if len(command) >= 3 and command[1] == "-m":
        return command[2], list(command[3:])
    raise ZygoteError(
        f"a zygote can only fork 'python -m MODULE ...' commands, not {list(command)!r}; "
        "launch this plugin as a process instead"
    )


class ZygoteChild:
    """A forked plugin, with the parts of ``asyncio.subprocess.Process`` a launcher uses."""

    def __init__(
        self,
        zygote: Zygote,
        pid: int,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        self._zygote = zygote
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._exited = asyncio.Event()

    def _set_exit(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    async def wait(self) -> int:
        """Wait for the exit; the code is negative for a signal (as asyncio reports it)."""
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        """Signal the plugin process (nothing if it has exited)."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


class Zygote:
    """Host side: start the zygote process, fork plugins from it, learn their exit codes."""

    def __init__(self, process: asyncio.subprocess.Process, sock: socket.socket) -> None:
        self._process = process
        self._sock = sock
        self._children: dict[int, ZygoteChild] = {}
        self._early_exits: dict[int, int] = {}
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read_events())
        self._spawn_lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        """The zygote process's pid."""
        return self._process.pid

    @classmethod
    async def start(
        cls,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        *,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        ready_timeout: float = 30.0,
    ) -> Zygote:
        """Start a zygote that has imported ``preload``; return once it is ready to fork."""
        base_env = os.environ if env is None else env
        host_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await asyncio.create_subprocess_exec(
                python,
                "-m",
                "plugin_di.launch.zygote",
                *preload,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,  # the host's stdout is not the zygote's to use
                env={**base_env, _CTRL_FD_ENV: str(zygote_end.fileno())},
                cwd=cwd,
                pass_fds=(zygote_end.fileno(),),
            )
        finally:
            zygote_end.close()
        host_end.setblocking(False)
        zygote = cls(process, host_end)
        try:
            reply = await asyncio.wait_for(zygote._replies.get(), ready_timeout)
        except (TimeoutError, asyncio.CancelledError):
            await zygote.aclose()
            raise
        if "error" in reply:
            await zygote.aclose()
            raise ZygoteError(f"the zygote could not start: {reply['error']}")
        return zygote

    async def _read_events(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self._sock, _MAX_MESSAGE)
                if not data:
                    break
                event = json.loads(data)
                if "exit" in event:
                    pid, code = int(event["exit"]), int(event["code"])
                    child = self._children.pop(pid, None)
                    if child is not None:
                        child._set_exit(code)
                    else:
                        self._early_exits[pid] = code
                else:
                    await self._replies.put(event)
        except OSError:
            pass
        finally:
            await self._replies.put({"error": "the zygote process is gone"})
            for child in self._children.values():  # their exit codes cannot be known any more
                child._set_exit(-signal.SIGKILL)
            self._children.clear()

    async def spawn(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        pass_fds: Sequence[int] = (),
        limit: int = 2**16,
    ) -> ZygoteChild:
        """Fork ``command`` (``[python, "-m", MODULE, *ARGS]``) with stdout/stderr pipes.

        ``env`` is the child's whole environment; ``pass_fds`` keep their numbers in the
        child. Raises `ZygoteError` when the zygote is gone or cannot fork.
        """
        module, args = _module_argv(command)
        if len(pass_fds) > _MAX_FDS - 3:
            raise ZygoteError(f"at most {_MAX_FDS - 3} inherited descriptors can be passed")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        request = {
            "module": module,
            "args": args,
            "env": dict(env),
            "cwd": cwd or os.getcwd(),
            "targets": [0, 1, 2, *pass_fds],
        }
        try:
            async with self._spawn_lock:
                # one small datagram on an idle socket: it does not block
                socket.send_fds(
                    self._sock, [json.dumps(request).encode()], [null, out_w, err_w, *pass_fds]
                )
                reply = await self._replies.get()
        except OSError as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            raise ZygoteError(f"cannot reach the zygote (pid {self.pid}): {exc}") from exc
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
        if "error" in reply:
            for fd in (out_r, err_r):
                os.close(fd)
            raise ZygoteError(f"the zygote could not fork {module}: {reply['error']}")
        pid = int(reply["pid"])
        stdout = await _reader(out_r, limit)
        stderr = await _reader(err_r, limit)
        child = ZygoteChild(self, pid, stdout, stderr)
        if pid in self._early_exits:
            child._set_exit(self._early_exits.pop(pid))
        else:
            self._children[pid] = child
        return child

    async def aclose(self) -> None:
        """Stop the zygote (plugins it forked keep running until stopped or orphaned)."""
        self._sock.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        try:
            await asyncio.wait_for(self._process.wait(), 5)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


async def _reader(fd: int, limit: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    pipe = os.fdopen(fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
    return reader


# ---- the zygote process ------------------------------------------------------------------


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
                        data, fds, _flags, _addr = socket.recv_fds(ctrl, _MAX_MESSAGE, _MAX_FDS)
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
        code = 70
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
    import traceback

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
    except BaseException:
        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    return code


def _dup_high(fd: int, lowest: int = 256) -> int:
    """A copy of ``fd`` numbered ``lowest`` or above; the original is closed."""
    import fcntl

    copy = fcntl.fcntl(fd, fcntl.F_DUPFD, lowest)
    os.close(fd)
    return copy


def main(argv: Sequence[str]) -> int:
    """The zygote process: import ``argv`` (modules), say ready, fork on request."""
    ctrl = socket.socket(fileno=int(os.environ.pop(_CTRL_FD_ENV)))
    try:
        for module in argv:
            importlib.import_module(module)
    except Exception as exc:
        _send(ctrl, {"error": f"cannot import {module}: {exc!r}"})
        return 1
    from plugin_di.plugin.parent_watch import set_parent_death_signal

    set_parent_death_signal(signal.SIGKILL)  # the zygote has nothing to save; its host is gone
    _send(ctrl, {"ready": True})
    return _serve(ctrl)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
