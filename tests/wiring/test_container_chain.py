"""The container injects one interceptor chain into every plugin client (issue 6, step 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from dependency_injector import containers, providers

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from examples.kv.store import KVStore
from plugin_di.clock import FakeClock
from plugin_di.di.app import App
from plugin_di.di.events import EmitterProvider, Event
from plugin_di.di.providers import (
    InMemoryPlugin,
    InterceptorChainProvider,
    RemotePlugin,
    placed,
    plugin_handles,
    plugins_health,
)
from plugin_di.di.providers_events import BreakerStateChanged
from plugin_di.launch.events import HealthState, PluginBreakerChanged
from plugin_di.launch.inmemory import InMemoryHandle
from plugin_di.plugin.definition import Plugin, Service
from plugin_di.rpc.interceptors import (
    BearerAuthenticator,
    BreakerConfig,
    CircuitState,
    InterceptorChain,
    current_identity,
)
from plugin_di.rpc.tls import InsecureTransportError

ROOT = Path(__file__).resolve().parents[2]


class FlakyStore(KVStore):
    """KV whose Get fails UNAVAILABLE while ``down``; records who called."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.callers: list[str | None] = []

    async def get(
        self, request: kv_pb2.GetRequest, ctx: RequestContext[Any, Any]
    ) -> kv_pb2.GetResponse:
        identity = current_identity()
        self.callers.append(identity.identity if identity else None)
        if self.down:
            raise ConnectError(Code.UNAVAILABLE, "store is down")
        return kv_pb2.GetResponse(value=b"v", found=True)


def kv_plugin(name: str, store: KVStore | None = None) -> Plugin:
    impl = store if store is not None else KVStore()
    return Plugin(
        name=name, services=[Service(KVServiceASGIApplication, KVServiceClient, impl=impl)]
    )


class Recorder:
    """A metadata interceptor (client or server) that appends its name to a shared log."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        self.log.append(self.name)

    async def on_end(self, token: None, ctx: RequestContext[Any, Any], error: Any) -> None:
        return None


@pytest.mark.parametrize("mode", ["direct", "asgi"])
async def test_in_memory_clients_and_server_run_the_chain_in_the_documented_order(
    mode: str,
) -> None:
    log: list[str] = []
    store = FlakyStore()
    chain = InterceptorChain(
        bearer_token="s3cret",
        authenticators=[BearerAuthenticator(lambda t: "alice" if t == "s3cret" else None)],
        client_extra=[Recorder("chain-client", log)],
        server_extra=[Recorder("chain-server", log)],
    )

    class Container(containers.DeclarativeContainer):
        kv = InMemoryPlugin(
            kv_plugin("kv", store),
            mode=mode,  # type: ignore[arg-type]
            interceptors=[Recorder("provider-client", log)],
            server_interceptors=[Recorder("provider-server", log)],
            chain=chain,
        )

    app = App(Container)
    await app.start()
    try:
        client = app.container.kv.client(KVServiceClient)()
        await client.get(kv_pb2.GetRequest(key="a"))
        assert log == ["provider-client", "chain-client", "chain-server", "provider-server"]
        assert store.callers == ["alice"]  # the chain's bearer token passed its ServerAuth
    finally:
        await app.stop()


async def test_in_memory_server_side_auth_rejects_a_client_without_the_token() -> None:
    chain = InterceptorChain(
        authenticators=[BearerAuthenticator(lambda t: "alice" if t == "s3cret" else None)],
    )

    class Container(containers.DeclarativeContainer):
        kv = InMemoryPlugin(kv_plugin("kv"), mode="asgi", chain=chain)

    app = App(Container)
    await app.start()
    try:
        with pytest.raises(ConnectError) as rejected:
            await app.container.kv.client(KVServiceClient)().get(kv_pb2.GetRequest(key="a"))
        assert rejected.value.code is Code.UNAUTHENTICATED
    finally:
        await app.stop()


async def test_breaker_opens_as_an_event_and_health_is_degraded_until_it_closes() -> None:
    clock = FakeClock()
    store = FlakyStore()
    config = BreakerConfig(failure_threshold=2, open_timeout=5.0, success_threshold=1)

    class Container(containers.DeclarativeContainer):
        events = EmitterProvider()
        chain = InterceptorChainProvider(InterceptorChain(clock=clock, retry=None, breaker=config))
        kv = InMemoryPlugin(kv_plugin("kv", store), events=events, chain=chain)
        other = InMemoryPlugin(kv_plugin("other"), events=events, chain=chain)

    seen: list[Event] = []
    app = App(Container, sinks=[seen.append])
    await app.start()
    try:
        client = app.container.kv.client(KVServiceClient)()
        other = app.container.other.client(KVServiceClient)()
        store.down = True
        for _ in range(2):
            with pytest.raises(ConnectError) as failed:
                await client.get(kv_pb2.GetRequest(key="a"))
            assert failed.value.code is Code.UNAVAILABLE
        changes = [e for e in seen if isinstance(e, BreakerStateChanged)]
        assert [(e.plugin, e.endpoint, e.old, e.new) for e in changes] == [
            ("kv", "in-memory://kv", "Closed", "Open")
        ]
        assert isinstance(changes[0], PluginBreakerChanged)
        assert "DEGRADED" in changes[0].message()
        calls = len(store.callers)
        with pytest.raises(ConnectError) as fast:
            await client.get(kv_pb2.GetRequest(key="a"))
        assert fast.value.code is Code.UNAVAILABLE
        assert "circuit breaker" in fast.value.message
        assert len(store.callers) == calls  # failed fast: the implementation was not called

        health = await plugins_health(app.container)
        assert health["kv"].state is HealthState.DEGRADED
        assert "in-memory://kv" in health["kv"].reason
        # one container-wide chain, but each plugin has its own breaker
        assert health["other"].state is HealthState.HEALTHY
        await other.put(kv_pb2.PutRequest(key="x", value=b"1"))

        store.down = False
        clock.advance(5.0)
        await client.get(kv_pb2.GetRequest(key="a"))  # the half-open probe succeeds
        states = [e.new for e in seen if isinstance(e, BreakerStateChanged)]
        assert states == ["Open", "HalfOpen", "Closed"]
        assert (await plugins_health(app.container))["kv"].state is HealthState.HEALTHY
        handles = plugin_handles(app.container)
        assert handles["kv"].chain is not handles["other"].chain
        assert handles["kv"].chain.breakers["in-memory://kv"].state is CircuitState.CLOSED
    finally:
        await app.stop()


async def test_a_chain_from_any_provider_and_its_own_callback_still_fires() -> None:
    heard: list[tuple[str, CircuitState, CircuitState]] = []
    store = FlakyStore()
    store.down = True

    class Container(containers.DeclarativeContainer):
        chain = providers.Singleton(
            InterceptorChain,
            retry=None,
            breaker=BreakerConfig(failure_threshold=1),
            on_breaker_state_change=lambda e, old, new: heard.append((e, old, new)),
        )
        kv = placed(kv_plugin("kv", store), "in-memory", chain=chain)

    app = App(Container)
    await app.start()
    try:
        with pytest.raises(ConnectError):
            await app.container.kv.client(KVServiceClient)().get(kv_pb2.GetRequest(key="a"))
        assert heard == [("in-memory://kv", CircuitState.CLOSED, CircuitState.OPEN)]
    finally:
        await app.stop()


class SyncOnly:
    def on_start_sync(self, ctx: Any) -> None: ...

    def on_end_sync(self, token: None, ctx: Any, error: Any) -> None: ...


def test_interceptors_connectrpc_would_ignore_are_refused() -> None:
    with pytest.raises(TypeError, match="only sync method names"):
        InMemoryHandle(kv_plugin("kv"), interceptors=[SyncOnly()])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="only sync method names"):
        InMemoryHandle(kv_plugin("kv"), server_interceptors=[SyncOnly()])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sync=False"):
        InMemoryHandle(kv_plugin("kv"), chain=InterceptorChain(sync=True))


def test_credentials_in_plaintext_to_a_remote_address_are_refused() -> None:
    class Container(containers.DeclarativeContainer):
        kv = RemotePlugin(
            kv_plugin("kv"), "http://10.0.0.5:8080", chain=InterceptorChain(bearer_token="t")
        )

    container = Container()
    with pytest.raises(InsecureTransportError, match=r"10\.0\.0\.5:8080"):
        container.kv.client(KVServiceClient)()
