"""The probe plugin: a KVService that keeps what it was sent and misbehaves on named keys.

It is no store (`tests.support.kv.KV` is the KV double); `served` is its plugin for
``plugin-di serve tests.support.probe:served``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVService, KVServiceASGIApplication, KVServiceClient
from plugin_di.plugin.definition import Plugin, Service
from plugin_di.rpc.errors import pack_detail


class ProbeKV(KVService):
    """Get answers from ``stored``; Put keeps the request object; some keys misbehave."""

    def __init__(self) -> None:
        self.stored = pb.GetResponse(value=b"original", found=True)
        self.last_put: pb.PutRequest | None = None
        self.seen_headers: dict[str, str] = {}
        self.never = asyncio.Event()
        self.in_flight = asyncio.Event()
        self.stopping = asyncio.Event()

    async def get(self, request: pb.GetRequest, ctx: RequestContext[Any, Any]) -> pb.GetResponse:
        self.seen_headers = dict(ctx.request_headers)
        if request.key == "boom":
            raise RuntimeError("db password=hunter2")
        if request.key == "hang":
            self.in_flight.set()
            await self.never.wait()
        if request.key == "until-stop":
            self.in_flight.set()
            await self.stopping.wait()
            return pb.GetResponse(value=b"finished", found=True)
        if request.key == "detailed":
            why = pb.WatchEvent(key="why", value=b"because")
            raise ConnectError(Code.FAILED_PRECONDITION, "not now", details=[pack_detail(why)])
        if request.key == "denied":
            raise ConnectError(Code.PERMISSION_DENIED, "not yours")
        ctx.response_headers["x-served-by"] = "probe"
        ctx.response_trailers["x-trailer"] = "t"
        return self.stored

    async def put(self, request: pb.PutRequest, ctx: RequestContext[Any, Any]) -> pb.PutResponse:
        self.last_put = request
        return pb.PutResponse()

    async def watch(
        self, request: pb.WatchRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.WatchEvent]:
        for i in range(3):
            yield pb.WatchEvent(type=pb.EVENT_TYPE_PUT, key=f"{request.prefix}{i}")
        if request.prefix == "fail":
            raise ValueError("secret detail")
        if request.prefix == "hang":
            await self.never.wait()

    async def on_shutdown(self) -> None:
        self.stopping.set()

    async def delete(
        self, request: pb.DeleteRequest, ctx: RequestContext[Any, Any]
    ) -> pb.DeleteResponse:
        """Reports whether a Get is in flight (lets a test in another process know)."""
        return pb.DeleteResponse(found=self.in_flight.is_set())

    # list is left to the generated Protocol: UNIMPLEMENTED.


def probe_plugin() -> tuple[Plugin, ProbeKV]:
    impl = ProbeKV()
    plugin = Plugin(
        name="probe", services=[Service(KVServiceASGIApplication, KVServiceClient, impl=impl)]
    )
    return plugin, impl


served, _served_impl = probe_plugin()
