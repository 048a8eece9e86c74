"""A KV plugin that tells how many Watch streams it serves and how many ended.

``put`` sends an event to every open watch; ``list`` answers ``active=N`` and ``ended=M``,
so a test in another process can see when the server noticed a client going away.
Served by the cancellation tests as ``plugin-di serve tests.rpc.watch_probe:plugin``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVService, KVServiceASGIApplication, KVServiceClient
from plugin_di.plugin.definition import Plugin, Service


class WatchProbe(KVService):
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[pb.WatchEvent]] = set()
        self.ended = 0

    async def watch(
        self, request: pb.WatchRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.WatchEvent]:
        queue: asyncio.Queue[pb.WatchEvent] = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield pb.WatchEvent(key="_watch_started")
            while True:
                yield await queue.get()
        finally:
            self.queues.discard(queue)
            self.ended += 1

    async def put(self, request: pb.PutRequest, ctx: RequestContext[Any, Any]) -> pb.PutResponse:
        for queue in self.queues:
            queue.put_nowait(pb.WatchEvent(type=pb.EVENT_TYPE_PUT, key=request.key))
        return pb.PutResponse()

    async def list(self, request: pb.ListRequest, ctx: RequestContext[Any, Any]) -> pb.ListResponse:
        return pb.ListResponse(keys=[f"active={len(self.queues)}", f"ended={self.ended}"])


probe = WatchProbe()
plugin = Plugin(
    name="watch-probe", services=[Service(KVServiceASGIApplication, KVServiceClient, impl=probe)]
)
