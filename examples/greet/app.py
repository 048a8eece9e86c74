"""An app that launches the greeter plugin in a child process and calls it: ``python -m
examples.greet.app``. The app's side needs only the declaration without the implementation."""

from __future__ import annotations

import asyncio

from dependency_injector import containers, providers

from examples.greet.gen.greet.v1.greet_pb2 import GreetRequest
from examples.greet.gen.greet.v1.greet_plugin import GreeterServiceClient, greeter_plugin
from plugin_di import App, ProcessPlugin


class Welcome:
    """An app service that depends on the greeter through its typed client."""

    def __init__(self, greeter: GreeterServiceClient) -> None:
        self.greeter = greeter

    async def message(self, name: str) -> str:
        response = await self.greeter.greet(GreetRequest(name=name))
        return f"{response.greeting} (served by {response.served_by})"


class AppContainer(containers.DeclarativeContainer):
    greet = ProcessPlugin(greeter_plugin(), module="examples.greet")
    welcome = providers.Singleton(Welcome, greeter=greet.client(GreeterServiceClient))


async def main(container: type[containers.DeclarativeContainer] = AppContainer) -> None:
    """Start the app, greet the world through the plugin, stop."""
    app = App(container)
    await app.start()
    try:
        print(await app.container.welcome().message("world"))
    finally:
        await app.stop()


if __name__ == "__main__":
    asyncio.run(main())
