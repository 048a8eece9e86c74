"""A Python app launching the JavaScript greeter: ``python -m examples.node_plugin.app``.

First, in this folder: ``npm ci && npm run gen``. The declaration is the one generated for
``greet.v1.GreeterService``, without an implementation: the process serves it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from dependency_injector import containers, providers

from examples.greet.app import Welcome, main
from examples.greet.gen.greet.v1.greet_plugin import GreeterServiceClient, greeter_plugin
from plugin_di import ProcessPlugin

PLUGIN_JS = Path(__file__).with_name("plugin.js")


def node_greeter(script: Path = PLUGIN_JS) -> ProcessPlugin:
    """The greeter served by ``node script``: a supervised child process like any other."""
    return ProcessPlugin(greeter_plugin(name="greet"), command=["node", str(script)])


class AppContainer(containers.DeclarativeContainer):
    greet = node_greeter()
    welcome = providers.Singleton(Welcome, greeter=greet.client(GreeterServiceClient))


if __name__ == "__main__":
    asyncio.run(main(AppContainer))
