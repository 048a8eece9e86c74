"""Overriding a plugin provider with a fake implementation, a fake client or another plugin."""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from dependency_injector import providers

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.events import Emitter, Event
from plugin_di.di.fakes import FakeClientHandle
from plugin_di.di.providers import InMemoryPlugin
from plugin_di.di.providers_events import PluginStarted, PluginStopped
from plugin_di.gen.capability.logger.v1 import logger_pb2 as logger_pb
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerASGIApplication, LoggerClient
from plugin_di.launch.inmemory import InMemoryHandle
from plugin_di.launch.process_handle import ProcessHandle
from plugin_di.plugin.definition import Plugin, Service
from plugin_di.testing import FakeClient, FakeImpl, Overrides, override, started
from tests.testing.support import (
    Anything,
    AppContainer,
    FakeClientOfKv,
    FakeStorage,
    StorageBase,
    Unrelated,
    quiet,
)


async def test_a_fake_implementation_is_served_through_the_generated_client() -> None:
    container = AppContainer()
    fake = FakeStorage()
    seen: list[Event] = []
    with override(container, kv=fake):
        async with started(container, settings=quiet(), sinks=[seen.append]) as app:
            store = app.container.store()
            # the code under test holds the real generated client, not the fake
            assert isinstance(store.kv, KVServiceClient)
            assert await store.read("a") == b"impl:a"
            watched = [e.key async for e in store.kv.watch(pb.WatchRequest(prefix="p/"))]
    assert fake.asked == ["a"]
    assert watched == ["p/a", "p/b"]
    # the fake plugin is started and stopped by the app and reports to its sinks
    started_events = [e for e in seen if isinstance(e, PluginStarted)]
    assert [(e.plugin, e.placement) for e in started_events] == [("kv", "in-memory")]
    assert any(isinstance(e, PluginStopped) for e in seen)


async def test_a_method_the_fake_lacks_answers_unimplemented() -> None:
    container = AppContainer()
    with override(container, kv=FakeStorage()):
        async with started(container, settings=quiet(), sinks=[]) as app:
            with pytest.raises(ConnectError) as caught:
                await app.container.store().write("a", b"1")
    assert caught.value.code is Code.UNIMPLEMENTED
    assert "FakeStorage does not implement kv.v1.KVService.put" in caught.value.message


async def test_a_subclass_of_the_generated_service_is_an_implementation() -> None:
    container = AppContainer()
    with override(container, kv=StorageBase()):
        async with started(container, settings=quiet(), sinks=[]) as app:
            assert await app.container.store().read("x") == b"base"
            with pytest.raises(ConnectError) as caught:  # the generated default
                await app.container.store().write("a", b"1")
    assert caught.value.code is Code.UNIMPLEMENTED


async def test_a_fake_client_is_handed_out_as_is() -> None:
    container = AppContainer()
    fake = FakeClientOfKv()
    with override(container, kv=fake):
        async with started(container, settings=quiet(), sinks=[]) as app:
            store = app.container.store()
            assert store.kv is fake
            await store.write("k", b"v")
            assert await store.read("k") == b"v"
            handle = app.container.kv()
            assert isinstance(handle, FakeClientHandle)
            assert str(await handle.health()) == "HEALTHY (fake client)"
    assert fake.written == {"k": b"v"}


async def test_a_mock_with_the_client_spec_is_a_client() -> None:
    container = AppContainer()
    mock = AsyncMock(spec=KVServiceClient)
    mock.get.return_value = pb.GetResponse(value=b"mocked", found=True)
    with override(container, kv=mock):
        async with started(container, settings=quiet(), sinks=[]) as app:
            assert await app.container.store().read("m") == b"mocked"
    mock.get.assert_awaited_once_with(pb.GetRequest(key="m"))


async def test_another_plugin_replaces_a_process_plugin_in_memory() -> None:
    container = AppContainer()
    with override(container, kv=make_plugin()):
        async with started(container, settings=quiet(), sinks=[]) as app:
            assert isinstance(app.container.kv(), InMemoryHandle)
            store = app.container.store()
            await store.write("k", b"real")
            assert await store.read("k") == b"real"
    # restored: the declared process plugin again (built, not started)
    assert isinstance(container.kv(), ProcessHandle)


def test_dependency_injectors_own_override_accepts_fakes() -> None:
    container = AppContainer()
    container.events.override(Emitter())  # an App binds it; here nothing does
    fake = FakeClientOfKv()
    with container.kv.override(fake):
        assert container.kv().client(KVServiceClient) is fake
    with container.kv.override(providers.Object(FakeStorage())):  # wrapped, as helpers do
        assert isinstance(container.kv(), InMemoryHandle)
    with container.override_providers(kv=fake):
        assert container.kv().client(KVServiceClient) is fake
    assert not container.kv.overridden


def test_an_object_that_fits_neither_is_refused_when_overriding() -> None:
    container = AppContainer()
    with pytest.raises(TypeError) as caught, override(container, kv=Unrelated()):
        pass
    message = str(caught.value)
    assert "override of plugin 'kv': Unrelated is neither a fake implementation" in message
    assert "none of the services' methods" in message
    assert "`async def get(self, request, ctx)`" in message
    assert not container.kv.overridden
    with pytest.raises(TypeError, match="do not say whether it is one or the other"):
        container.kv.override(Anything())


async def test_fake_impl_and_fake_client_say_which_when_the_methods_cannot() -> None:
    for fake, expected in ((FakeImpl(Anything()), InMemoryHandle), (FakeClient(Anything()), None)):
        container = AppContainer()
        with override(container, kv=fake):
            async with started(container, settings=quiet(), sinks=[]) as app:
                assert await app.container.store().read("z") == b"anything"
                if expected is None:
                    assert app.container.store().kv is fake.client  # type: ignore[union-attr]
                else:
                    assert isinstance(app.container.kv(), expected)


async def test_a_fake_client_stands_only_for_the_services_it_fakes() -> None:
    kv_service = make_plugin().services[0]
    logger = Service(LoggerASGIApplication, LoggerClient)
    both = InMemoryPlugin(Plugin(name="both", services=[kv_service, logger]))
    with both.override(FakeClientOfKv()):
        handle = both()
        assert isinstance(handle.client(KVServiceClient), FakeClientOfKv)
        with pytest.raises(TypeError, match="fake client \\(FakeClientOfKv\\) of KVServiceClient"):
            handle.client(LoggerClient)


async def test_a_fake_implementation_of_one_of_two_services_serves_that_one() -> None:
    class FakeLog:
        def __init__(self) -> None:
            self.lines: list[str] = []

        async def log(self, request: logger_pb.LogRequest, ctx: Any) -> logger_pb.LogResponse:
            self.lines.append(request.message)
            return logger_pb.LogResponse()

    kv_service = make_plugin().services[0]
    logger = Service(LoggerASGIApplication, LoggerClient)
    both = InMemoryPlugin(Plugin(name="both", services=[kv_service, logger]))
    fake = FakeLog()
    with both.override(fake):
        handle = both()
        await handle.start()
        await handle.client(LoggerClient).log(logger_pb.LogRequest(message="hi"))
        with pytest.raises(Exception, match="no service for KVServiceClient"):
            handle.client(KVServiceClient)
        await handle.stop()
    assert fake.lines == ["hi"]


async def test_di_override_fixture_takes_fakes(di_override: Overrides) -> None:
    container = AppContainer()
    di_override(container, kv=FakeStorage())
    app = App(container, settings=quiet(), sinks=[])
    await app.start()
    try:
        assert await app.container.store().read("f") == b"impl:f"
    finally:
        await app.stop()


async def test_a_fake_whose_ctx_is_optional_is_called_as_a_client() -> None:
    class CallableEitherWay:
        async def get(self, request: pb.GetRequest, ctx: object = None) -> pb.GetResponse:
            return pb.GetResponse(value=b"either", found=ctx is None)

    container = AppContainer()
    fake = CallableEitherWay()
    with override(container, kv=fake):
        async with started(container, settings=quiet(), sinks=[]) as app:
            assert app.container.store().kv is fake
            assert await app.container.store().read("e") == b"either"
