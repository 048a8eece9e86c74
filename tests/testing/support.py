"""An app with a plugin dependency, as users write one, and the fakes the tests give it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from connectrpc.request import RequestContext
from dependency_injector import containers, providers

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVService, KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di.events import EmitterProvider
from plugin_di.di.providers import ProcessPlugin
from plugin_di.settings import Settings


class Store:
    """The code under test: it only knows the generated client."""

    def __init__(self, kv: KVServiceClient) -> None:
        self.kv = kv

    async def read(self, key: str) -> bytes:
        return (await self.kv.get(pb.GetRequest(key=key))).value

    async def write(self, key: str, value: bytes) -> None:
        await self.kv.put(pb.PutRequest(key=key, value=value))


class AppContainer(containers.DeclarativeContainer):
    events = EmitterProvider()
    # a process plugin: a test that overrides it launches no process
    kv = ProcessPlugin(make_plugin(), module="examples.kv", events=events)
    store = providers.Singleton(Store, kv=kv.client(KVServiceClient))


class FakeStorage:
    """A fake implementation, duck-typed and partial: Get and Watch only."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def get(self, request: pb.GetRequest, ctx: Any) -> pb.GetResponse:
        self.asked.append(request.key)
        return pb.GetResponse(value=b"impl:" + request.key.encode(), found=True)

    async def watch(self, request: pb.WatchRequest, ctx: Any) -> AsyncIterator[pb.WatchEvent]:
        for key in ("a", "b"):
            yield pb.WatchEvent(type=pb.EVENT_TYPE_PUT, key=request.prefix + key)


class StorageBase(KVService):
    """A fake implementation that subclasses the generated protocol (recognised by it)."""

    async def get(
        self, request: pb.GetRequest, ctx: RequestContext[pb.GetRequest, pb.GetResponse]
    ) -> pb.GetResponse:
        return pb.GetResponse(value=b"base", found=True)


class FakeClientOfKv:
    """A fake client: the generated client's methods, taking the request alone."""

    def __init__(self) -> None:
        self.written: dict[str, bytes] = {}

    async def get(self, request: pb.GetRequest, **options: Any) -> pb.GetResponse:
        return pb.GetResponse(value=self.written.get(request.key, b"client"), found=True)

    async def put(self, request: pb.PutRequest, **options: Any) -> pb.PutResponse:
        self.written[request.key] = request.value
        return pb.PutResponse()


class Unrelated:
    """Fits neither: none of KVService's methods."""

    async def greet(self, name: str) -> str:
        return name


class Anything:
    """Takes any arguments: its methods say nothing about what it is."""

    async def get(self, *args: Any, **kwargs: Any) -> pb.GetResponse:
        return pb.GetResponse(value=b"anything", found=True)


def quiet() -> Settings:
    return Settings(start_timeout=10, stop_timeout=10, hook_timeout=10)
