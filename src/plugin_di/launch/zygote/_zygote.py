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
import collections
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from plugin_di.launch.zygote._main import CTRL_FD_ENV, MAX_FDS, MAX_MESSAGE, OPTIONAL_MARK

__all__ = ["DEFAULT_PRELOAD", "OPTIONAL_PRELOAD", "Zygote", "ZygoteChild", "ZygoteError"]

DEFAULT_PRELOAD = (
    "plugin_di.plugin.server",
    "plugin_di.rpc.serving",
    "plugin_di.cli.serve",
    "httptools",
    "uvloop",
)
"""Modules a zygote imports before forking: the plugin runtime and its server."""

OPTIONAL_PRELOAD = ("plugin_di.rpc.unary_shortpath", "plugin_di.rpc.serving._h2")
"""Imported lazily once a plugin serves (the short path, HTTP/2); an app's zygote imports them
ahead where it can (best effort: they may move)."""

# Interpreter settings read once at startup: a child forked from a zygote has the zygote's.
# (PYTHONPATH is applied to the child's sys.path, PYTHONUNBUFFERED to its stdio.)
_FORK_NEUTRAL_ENV = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED"})


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


def interpreter_env(env: Mapping[str, str]) -> dict[str, str]:
    """The ``PYTHON*`` variables of ``env`` that only take effect when an interpreter starts."""
    return {k: v for k, v in env.items() if k.startswith("PYTHON") and k not in _FORK_NEUTRAL_ENV}


class ZygoteChild:
    """A forked plugin, with the parts of ``asyncio.subprocess.Process`` a launcher uses."""

    def __init__(
        self,
        pid: int,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        exit_code: asyncio.Future[int],
    ) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self._exit_code = exit_code  # resolved by the zygote when it reports the exit

    @property
    def returncode(self) -> int | None:
        """The exit code (negative for a signal), None while it runs."""
        return self._exit_code.result() if self._exit_code.done() else None

    async def wait(self) -> int:
        """Wait for the exit; the code is negative for a signal (as asyncio reports it)."""
        return await asyncio.shield(self._exit_code)

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

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        sock: socket.socket,
        *,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._process = process
        self._sock = sock
        self.python = python
        """The interpreter it runs: only commands of this one are forked (`can_fork`)."""
        self.interpreter_env = interpreter_env(os.environ if env is None else env)
        self.skipped: list[str] = []
        """Optional preloads that failed to import (``"module: error"``)."""
        self._exit_codes: dict[int, asyncio.Future[int]] = {}  # of the children still running
        self._early_exits: dict[int, int] = {}
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # spawn requests sent and not yet answered, oldest first: the zygote answers in order,
        # so a burst of launches is sent at once (it forks them back to back)
        self._pending: collections.deque[asyncio.Future[dict[str, Any]]] = collections.deque()
        self._reader = asyncio.create_task(self._read_events())

    @property
    def pid(self) -> int:
        """The zygote process's pid."""
        return self._process.pid

    @property
    def alive(self) -> bool:
        """False once the zygote process is gone (or closed)."""
        return self._process.returncode is None and not self._reader.done()

    def can_fork(self, command: Sequence[str], env: Mapping[str, str]) -> bool:
        """Whether a fork runs ``command`` with ``env`` as a spawn would: ``python -m MODULE``
        of this zygote's interpreter, with the same interpreter-startup variables."""
        return (
            len(command) >= 3
            and command[1] == "-m"
            and os.path.abspath(command[0]) == os.path.abspath(self.python)
            and interpreter_env(env) == self.interpreter_env
        )

    @classmethod
    async def start(
        cls,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        *,
        optional: Sequence[str] = OPTIONAL_PRELOAD,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        ready_timeout: float = 30.0,
    ) -> Zygote:
        """Start a zygote that has imported ``preload``; return once it is ready to fork.

        ``optional`` modules are imported too, where they can be (a plugin's own modules:
        one that fails to import is left to the plugin, which reports it). ``env`` and
        ``cwd`` are the zygote's own (its interpreter settings and import path)."""
        base_env = os.environ if env is None else env
        host_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await asyncio.create_subprocess_exec(
                python,
                "-m",
                "plugin_di.launch.zygote._main",
                *preload,
                *((OPTIONAL_MARK, *optional) if optional else ()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,  # the host's stdout is not the zygote's to use
                env={**base_env, CTRL_FD_ENV: str(zygote_end.fileno())},
                cwd=cwd,
                pass_fds=(zygote_end.fileno(),),
            )
        finally:
            zygote_end.close()
        host_end.setblocking(False)
        zygote = cls(process, host_end, python=python, env=base_env)
        try:
            reply = await asyncio.wait_for(zygote._replies.get(), ready_timeout)
        except (TimeoutError, asyncio.CancelledError):
            await zygote.aclose()
            raise
        if "error" in reply:
            await zygote.aclose()
            raise ZygoteError(f"the zygote could not start: {reply['error']}")
        zygote.skipped = list(reply.get("skipped", ()))
        return zygote

    async def _read_events(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self._sock, MAX_MESSAGE)
                if not data:
                    break
                event = json.loads(data)
                if "exit" in event:
                    pid, code = int(event["exit"]), int(event["code"])
                    exit_code = self._exit_codes.pop(pid, None)
                    if exit_code is not None:
                        exit_code.set_result(code)
                    else:
                        self._early_exits[pid] = code
                elif self._pending:
                    waiter = self._pending.popleft()
                    if not waiter.done():
                        waiter.set_result(event)
                    elif "pid" in event:  # its launch was cancelled: nobody owns the child
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(event["pid"]), signal.SIGKILL)
                else:
                    await self._replies.put(event)
        except OSError:
            pass
        finally:
            gone = {"error": "the zygote process is gone"}
            await self._replies.put(gone)
            while self._pending:
                waiter = self._pending.popleft()
                if not waiter.done():
                    waiter.set_result(gone)
            for exit_code in self._exit_codes.values():  # they cannot be known any more
                exit_code.set_result(-signal.SIGKILL)
            self._exit_codes.clear()

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
        if len(pass_fds) > MAX_FDS - 3:
            raise ZygoteError(f"at most {MAX_FDS - 3} inherited descriptors can be passed")
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
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        try:
            if self._reader.done():
                raise OSError("the zygote process is gone")
            data = json.dumps(request).encode()
            await _send_fds(self._sock, data, [null, out_w, err_w, *pass_fds])
            self._pending.append(waiter)  # no await since the send: replies come in this order
            if self._reader.done() and not waiter.done():  # it died during the send
                waiter.set_result({"error": "the zygote process is gone"})
            reply = await waiter
        except BaseException as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            if isinstance(exc, OSError):
                raise ZygoteError(f"cannot reach the zygote (pid {self.pid}): {exc}") from exc
            raise  # cancelled: a child forked for this request is killed when its pid arrives
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
        exit_code: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if pid in self._early_exits:
            exit_code.set_result(self._early_exits.pop(pid))
        else:
            self._exit_codes[pid] = exit_code
        return ZygoteChild(pid, stdout, stderr, exit_code)

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


async def _send_fds(sock: socket.socket, data: bytes, fds: Sequence[int]) -> None:
    """``socket.send_fds`` on a non-blocking socket, waiting while its buffer is full."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            socket.send_fds(sock, [data], list(fds))
            return
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(sock, writable.set_result, None)
            try:
                await writable
            finally:
                loop.remove_writer(sock)


async def _reader(fd: int, limit: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    pipe = os.fdopen(fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
    return reader
