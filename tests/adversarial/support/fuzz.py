"""A fuzz harness for a served surface: hypothesis inputs in every framing, sent raw.

`FuzzTarget` names what is attacked: a `Surface` (URL, server kind, HTTP/2 or not, a valid
call), its methods, and headers every input carries (credentials, so inputs reach the code
behind authentication). `framings.FRAMINGS` maps each framing's name to a hypothesis
strategy of `FuzzInput`s; `Fuzzer.send` sends one and classifies the answer (`Figures`):

- every answer is counted by its code (``ok``, ``invalid_argument``, ``http-415``, ...);
- a *crash* is an answer the server should never give: ``unknown`` or ``internal`` (an
  unhandled exception, even one sanitized), an HTTP 5xx other than 503 and 504, or a
  well-formed request left without an answer;
- a *leak* is exception text in an answer (`wire.leaks`);
- every ``check_every`` inputs, and after each batch, the surface's valid call must succeed.

The servers run in a `Portal` (an event loop in a thread), so hypothesis drives the inputs
from a plain synchronous test. The same harness takes any URL and server kind: a test for
a new server builds a `Surface` for it and runs the framings against it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
from collections import Counter
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .answers import answer_code, answer_message, leaks
from .framings import FRAMINGS
from .inputs import FuzzInput, FuzzTarget, make_input
from .servers import Method
from .wire import Endpoint, H2Request, NoAnswer, Reply, h1_exchange, h1_request, h2_exchange

__all__ = ["FRAMINGS", "Figures", "FuzzInput", "FuzzTarget", "Fuzzer", "Portal", "SurfaceDown"]

T = TypeVar("T")

# A sanitized unhandled exception; other INTERNAL answers are protocol errors the Connect
# protocol gives that code (a compressed flag without an encoding, say).
INTERNAL_MESSAGE = "internal error"
WITHIN = 5.0  # seconds an answer may take


# --- running servers beside a synchronous test ---------------------------------------------


class Portal:
    """An event loop in a daemon thread: servers live in it, tests hand it coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], within: float = 60.0) -> T:
        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(within)

    @contextlib.contextmanager
    def entered(self, manager: contextlib.AbstractAsyncContextManager[T]) -> Iterator[T]:
        """Enter an async context manager in the loop, for the block's duration."""
        value = self.run(manager.__aenter__())
        try:
            yield value
        finally:
            self.run(manager.__aexit__(None, None, None))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


# --- sending and counting ----------------------------------------------------------------


@dataclass
class Figures:
    """What a surface answered."""

    inputs: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    valid_calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "answers_by_code": dict(sorted(self.codes.items())),
            "crashes": len(self.crashes),
            "leaks": len(self.leaks),
            "valid_calls_after_batches": self.valid_calls,
            "first_crashes": self.crashes[:10],
            "first_leaks": self.leaks[:10],
        }


class SurfaceDown(Exception):
    """The surface refuses connections: its server is gone."""


class Fuzzer:
    """Sends `FuzzInput`s to a target and keeps its `Figures`; raises `SurfaceDown` when the
    server stops accepting connections (a crash the caller reports)."""

    def __init__(
        self, target: FuzzTarget, portal: Portal, check_every: int = 200, window: int = 1
    ) -> None:
        """``window``: inputs in flight at once. 1 sends each input and waits for its answer;
        more lets hypothesis draw the next inputs while the server answers (the long run's
        speed), each still on its own connection."""
        self.target = target
        self.portal = portal
        self.check_every = check_every
        self.window = window
        self.figures = Figures()
        self._endpoint = Endpoint.from_url(target.surface.url)
        self._in_flight: collections.deque[concurrent.futures.Future[str]] = collections.deque()

    def send(self, inp: FuzzInput) -> None:
        """Send one input (crashes and leaks are recorded); with a ``window`` above 1, return
        once fewer than ``window`` inputs are unanswered."""
        self._in_flight.append(
            asyncio.run_coroutine_threadsafe(self._exchange(inp), self.portal.loop)
        )
        while len(self._in_flight) >= self.window:
            self._count(self._in_flight.popleft().result(WITHIN * 2))

    def settle(self) -> None:
        """Wait for every input in flight and count its outcome."""
        while self._in_flight:
            self._count(self._in_flight.popleft().result(WITHIN * 2))

    def _count(self, outcome: str) -> None:
        if outcome in ("connection-ConnectionRefusedError", "connection-FileNotFoundError"):
            raise SurfaceDown(f"{self.target.surface.name} refuses connections")
        self.figures.inputs += 1
        self.figures.codes[outcome] += 1
        if self.figures.inputs % self.check_every == 0:
            self.check_valid_call()

    async def _exchange(self, inp: FuzzInput) -> str:
        try:
            reply = await self._request(inp)
        except NoAnswer as exc:
            reset = "reset" in str(exc)
            if inp.well_formed and not reset and not _refused_at_http_level(inp):
                self.figures.crashes.append(f"{_describe(inp)}: no answer ({exc})")
            return "reset" if reset else "no-answer"
        except (ConnectionError, OSError) as exc:
            return f"connection-{type(exc).__name__}"
        code = answer_code(reply, inp.protocol)
        found = leaks(reply)
        if found:
            self.figures.leaks.append(f"{_describe(inp)}: {found} {reply.body[:200]!r}")
        crashed = (
            code in ("unknown", "data_loss")
            or (code == "internal" and answer_message(reply, inp.protocol) == INTERNAL_MESSAGE)
            # What the HTTP layer answers a request outside HTTP's grammar is its business.
            or (inp.well_formed and (code == "malformed" or code.startswith("http-5")))
        )
        if crashed:
            self.figures.crashes.append(f"{_describe(inp)}: {code} {reply.status} {_text(reply)}")
        return code

    async def _request(self, inp: FuzzInput) -> Reply:
        if inp.http2:
            request = H2Request(inp.path, inp.headers, [inp.body], method=inp.method)
            return await h2_exchange(self._endpoint, request, within=WITHIN)
        raw = h1_request(
            inp.method.decode(),
            inp.path,
            [*inp.headers, (b"connection", b"close")],
            inp.body,
            content_length=not any(k == b"content-length" for k, _ in inp.headers),
        )
        return await h1_exchange(self._endpoint, raw, within=WITHIN)

    def check_valid_call(self) -> None:
        """The surface's valid call succeeds (else AssertionError)."""
        valid = self.target.surface.valid
        method = Method(valid.path, False, False)
        inp = make_input(self.target, method, "connect", False, valid.request)
        try:
            reply = self.portal.run(self._request(inp), WITHIN * 2)
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise SurfaceDown(f"{self.target.surface.name} refuses connections") from exc
        assert answer_code(reply, "connect") == "ok", (valid.path, reply)
        self.figures.valid_calls += 1


def _refused_at_http_level(inp: FuzzInput) -> bool:
    """Requests a server may drop without an answer: headers past HTTP servers' limits."""
    total = sum(len(k) + len(v) for k, v in inp.headers)
    return total > 16 * 1024 or len(inp.headers) > 100


def _describe(inp: FuzzInput) -> str:
    kind = dict(inp.headers).get(b"content-type", b"")
    http = "h2" if inp.http2 else "h1"
    return f"{http} {inp.path.decode()} {kind[:40]!r} body={len(inp.body)}B"


def _text(reply: Reply) -> str:
    message = reply.header(b"grpc-message") or reply.body[:160]
    return repr(message[:160])
