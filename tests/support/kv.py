"""The one in-memory KV double for tests: the examples' kv.v1 KVService (unary calls and Watch).

Get answers what was Put (``found=False`` for a missing key, or NOT_FOUND with
``missing="not_found"``), except for keys that misbehave on purpose:

- ``block`` sets `blocked`, then waits (at most 10 s) for `release` before answering as usual;
  `release` is a `threading.Event`, so a test on another thread or loop can set it.
- ``boom`` raises a ValueError whose text holds a secret (to check that errors are sanitised).
- ``whoami`` answers ``provider:identity`` of the authenticated caller, or ``anonymous``.

Watch with the prefix ``count:N`` streams N events ``k0 .. k{N-1}``; any other prefix streams
one PUT event per stored key under it, carrying the stored value (or, with
``watch_values="identity"``, the authenticated caller's identity).

Every call counts in `calls` and first raises the errors queued in `fail_next`; Get records
its request headers in `headers`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVService
from plugin_di.rpc.interceptors.auth import current_identity

BLOCK_LIMIT = 10.0  # seconds a ``block`` Get waits for `release` at most
_BLOCK_STEP = 0.005


class KV(KVService):
    """An in-memory KV with the knobs above; see the module docstring."""

    def __init__(
        self,
        data: Mapping[str, bytes] | None = None,
        *,
        missing: Literal["empty", "not_found"] = "empty",
        watch_values: Literal["stored", "identity"] = "stored",
    ) -> None:
        self.data: dict[str, bytes] = dict(data or {})
        self.missing = missing
        self.watch_values = watch_values
        self.release = threading.Event()
        self.blocked = asyncio.Event()
        self.headers: list[dict[str, str]] = []
        self.calls = 0
        self.fail_next: list[ConnectError] = []

    def _tick(self) -> None:
        self.calls += 1
        if self.fail_next:
            raise self.fail_next.pop(0)

    async def _wait_for_release(self) -> None:
        self.blocked.set()
        for _ in range(int(BLOCK_LIMIT / _BLOCK_STEP)):  # bounded
            if self.release.is_set():
                return
            await asyncio.sleep(_BLOCK_STEP)

    async def get(self, request: pb.GetRequest, ctx: RequestContext[Any, Any]) -> pb.GetResponse:
        self._tick()
        self.headers.append(dict(ctx.request_headers.items()))
        if request.key == "block":
            await self._wait_for_release()
        elif request.key == "boom":
            raise ValueError("db password=hunter2")
        elif request.key == "whoami":
            return pb.GetResponse(value=_identity(default="anonymous").encode(), found=True)
        value = self.data.get(request.key)
        if value is None and self.missing == "not_found":
            raise ConnectError(Code.NOT_FOUND, f"no key {request.key!r}")
        return pb.GetResponse(value=value or b"", found=value is not None)

    async def put(self, request: pb.PutRequest, ctx: RequestContext[Any, Any]) -> pb.PutResponse:
        self._tick()
        self.data[request.key] = request.value
        return pb.PutResponse()

    async def delete(
        self, request: pb.DeleteRequest, ctx: RequestContext[Any, Any]
    ) -> pb.DeleteResponse:
        self._tick()
        return pb.DeleteResponse(found=self.data.pop(request.key, None) is not None)

    async def list(self, request: pb.ListRequest, ctx: RequestContext[Any, Any]) -> pb.ListResponse:
        self._tick()
        return pb.ListResponse(keys=sorted(k for k in self.data if k.startswith(request.prefix)))

    async def watch(
        self, request: pb.WatchRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.WatchEvent]:
        self._tick()
        if request.prefix.startswith("count:"):
            for i in range(int(request.prefix.removeprefix("count:"))):
                yield pb.WatchEvent(type=pb.EVENT_TYPE_PUT, key=f"k{i}", value=b"v" * (i % 7))
            return
        for key in sorted(k for k in self.data if k.startswith(request.prefix)):
            value = self.data[key]
            if self.watch_values == "identity":
                value = _identity(default="", with_provider=False).encode()
            yield pb.WatchEvent(type=pb.EVENT_TYPE_PUT, key=key, value=value)


def _identity(default: str, with_provider: bool = True) -> str:
    ident = current_identity()
    if ident is None:
        return default
    return f"{ident.provider}:{ident.identity}" if with_provider else ident.identity
