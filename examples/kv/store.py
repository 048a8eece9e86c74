"""An in-memory key-value store: the implementation behind the KV example plugin.

Semantics follow connect-plugin-go's reference store: an empty key is
INVALID_ARGUMENT "key cannot be empty"; Delete notifies watchers only when the
key existed; Watch first sends the sentinel ``_watch_started`` event, then PUT
and DELETE events under its prefix; a slow watcher (32 events behind) misses
events rather than slowing writers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVService

WATCH_STARTED = "_watch_started"
WATCH_BUFFER = 32


def _require_key(key: str) -> None:
    if not key:
        raise ConnectError(Code.INVALID_ARGUMENT, "key cannot be empty")


class KVStore(KVService):
    """``kv.v1.KVService`` over a dict."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._watchers: set[asyncio.Queue[pb.WatchEvent | None]] = set()

    async def get(
        self, request: pb.GetRequest, ctx: RequestContext[pb.GetRequest, pb.GetResponse]
    ) -> pb.GetResponse:
        _require_key(request.key)
        value = self._data.get(request.key)
        return pb.GetResponse(value=value or b"", found=value is not None)

    async def put(
        self, request: pb.PutRequest, ctx: RequestContext[pb.PutRequest, pb.PutResponse]
    ) -> pb.PutResponse:
        _require_key(request.key)
        self._data[request.key] = request.value
        self._notify(pb.WatchEvent(type=pb.EVENT_TYPE_PUT, key=request.key, value=request.value))
        return pb.PutResponse()

    async def delete(
        self, request: pb.DeleteRequest, ctx: RequestContext[pb.DeleteRequest, pb.DeleteResponse]
    ) -> pb.DeleteResponse:
        _require_key(request.key)
        found = self._data.pop(request.key, None) is not None
        if found:
            self._notify(pb.WatchEvent(type=pb.EVENT_TYPE_DELETE, key=request.key))
        return pb.DeleteResponse(found=found)

    async def list(
        self, request: pb.ListRequest, ctx: RequestContext[pb.ListRequest, pb.ListResponse]
    ) -> pb.ListResponse:
        keys = sorted(k for k in self._data if k.startswith(request.prefix))
        return pb.ListResponse(keys=keys)

    async def watch(
        self, request: pb.WatchRequest, ctx: RequestContext[pb.WatchRequest, pb.WatchEvent]
    ) -> AsyncIterator[pb.WatchEvent]:
        queue: asyncio.Queue[pb.WatchEvent | None] = asyncio.Queue(WATCH_BUFFER)
        self._watchers.add(queue)
        try:
            # The sentinel makes the response start at once, so the caller
            # knows the watch is registered before it writes.
            yield pb.WatchEvent(type=pb.EVENT_TYPE_UNSPECIFIED, key=WATCH_STARTED)
            while (event := await queue.get()) is not None:
                if event.key.startswith(request.prefix):
                    yield event
        finally:
            self._watchers.discard(queue)

    async def on_shutdown(self) -> None:
        """End every watch cleanly, so a graceful stop need not wait for them."""
        for queue in self._watchers:
            while True:
                try:
                    queue.put_nowait(None)
                    break
                except asyncio.QueueFull:
                    queue.get_nowait()

    def _notify(self, event: pb.WatchEvent) -> None:
        for queue in self._watchers:
            # A slow watcher misses events instead of blocking writers.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)
