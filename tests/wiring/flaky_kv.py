"""A KV plugin whose ``Get`` of a ``flaky-*`` key fails UNAVAILABLE twice, then answers the
number of attempts it saw, and whose ``Get("whoami")`` answers the TLS peer certificate's name
(``plugin-di serve tests.wiring.flaky_kv:plugin``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from examples.kv.store import KVStore
from plugin_di.plugin.definition import Plugin, Service

FAILURES = 2


class FlakyKV(KVStore):
    def __init__(self) -> None:
        super().__init__()
        self.attempts: Counter[str] = Counter()

    async def get(
        self, request: kv_pb2.GetRequest, ctx: RequestContext[Any, Any]
    ) -> kv_pb2.GetResponse:
        if request.key == "whoami":  # the TLS peer's name, under automatic mTLS
            from plugin_di.rpc.tls import peer_certificate

            peer = peer_certificate()
            return kv_pb2.GetResponse(value=(peer.name if peer else "").encode(), found=True)
        if not request.key.startswith("flaky-"):
            return await super().get(request, ctx)
        self.attempts[request.key] += 1
        seen = self.attempts[request.key]
        if seen <= FAILURES:
            raise ConnectError(Code.UNAVAILABLE, f"warming up ({seen})")
        return kv_pb2.GetResponse(value=str(seen).encode(), found=True)


plugin = Plugin(
    name="kv", services=[Service(KVServiceASGIApplication, KVServiceClient, impl=FlakyKV())]
)
