"""The sync twins end to end: a WSGI server and a sync client built from a sync chain.

connectrpc silently skips interceptors with the wrong method names, so this proves the sync
chain is really applied: calls without credentials are refused, with them they pass, and a
flaky server is retried.
"""

from __future__ import annotations

from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from pyqwest import SyncClient
from pyqwest.testing import WSGITransport

from examples.kv.gen.kv.v1.kv_connect import (
    KVServiceClientSync,
    KVServiceSync,
    KVServiceWSGIApplication,
)
from plugin_di.host.tokens import TokenStore
from plugin_di.rpc.interceptors.auth import (
    RuntimeTokenAuthenticator,
    current_identity,
)
from plugin_di.rpc.interceptors.chain import InterceptorChain
from plugin_di.rpc.interceptors.credentials import (
    RuntimeCredentials,
)
from plugin_di.rpc.interceptors.ratelimit import Rate, RateLimitPolicy, retry_after_of
from tests.rpc.interceptors.support import pb, unavailable


class SyncKV(KVServiceSync):
    """A sync probe: Get answers the caller's identity, Get and Put count; the rest is
    the generated protocol's UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail_next: list[ConnectError] = []

    def get(self, request: pb.GetRequest, ctx: RequestContext[Any, Any]) -> pb.GetResponse:
        self.calls += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        ident = current_identity()
        return pb.GetResponse(value=(ident.identity if ident else "").encode(), found=True)

    def put(self, request: pb.PutRequest, ctx: RequestContext[Any, Any]) -> pb.PutResponse:
        self.calls += 1
        return pb.PutResponse()


def test_sync_chain_applies_auth_rate_limit_and_retry() -> None:
    store = TokenStore()
    ident = store.issue("kv")
    creds = RuntimeCredentials()
    slept: list[float] = []
    server_chain = InterceptorChain(
        sync=True,
        authenticators=[RuntimeTokenAuthenticator(store)],
        rate_limit=RateLimitPolicy(None, methods={"/kv.v1.KVService/Put": Rate(0.001, 1)}),
    )
    client_chain = InterceptorChain(
        sync=True, credentials=creds, random=lambda: 0.0, sleep_sync=slept.append
    )
    interceptors = client_chain.client_interceptors("http://localhost")
    service = SyncKV()
    app = KVServiceWSGIApplication(service, interceptors=server_chain.server_interceptors())
    client = KVServiceClientSync(
        "http://localhost",
        http_client=SyncClient(WSGITransport(app)),
        interceptors=interceptors,
        send_compression=None,
        accept_compression=[],
    )
    with client:
        with pytest.raises(ConnectError) as info:
            client.get(pb.GetRequest(key="a"))
        assert info.value.code is Code.UNAUTHENTICATED
        assert service.calls == 0
        creds.set(ident.runtime_id, ident.token)
        assert client.get(pb.GetRequest(key="a")).value == ident.runtime_id.encode()
        service.fail_next = [unavailable()]
        assert client.get(pb.GetRequest(key="a")).found
        assert len(slept) == 1
        client.put(pb.PutRequest(key="a"))
        with pytest.raises(ConnectError) as info:
            client.put(pb.PutRequest(key="a"))
        assert info.value.code is Code.RESOURCE_EXHAUSTED
        assert retry_after_of(info.value) == pytest.approx(1000, rel=0.01)
        assert len(slept) == 1  # a hint beyond max_backoff (10 s) is not waited for
