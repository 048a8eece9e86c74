"""Run a plugin in this process, with no socket: direct dispatch or in-process ASGI.

Both modes hand out an instance of the service's generated client class, so a
dependent cannot tell how (or where) the plugin is served:

* ``"direct"`` (the default): calls go to the implementation with copied
  message objects, through the client and server interceptor chains
  (`plugin_di.plugin.direct`);
* ``"asgi"``: the full Connect wire path over ``pyqwest.testing.ASGITransport``
  into the same `ServiceMux` a served plugin uses, for fidelity.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, TypeVar

import pyqwest
from connectrpc.client import ConnectClient
from connectrpc.interceptor import Interceptor
from pyqwest.testing import ASGITransport

from plugin_di.plugin.config import DEFAULT_MAX_MESSAGE_BYTES
from plugin_di.plugin.definition import Plugin
from plugin_di.plugin.direct import direct_client
from plugin_di.rpc.asgi import ServiceMux
from plugin_di.rpc.errors import SanitizeErrors

ClientT = TypeVar("ClientT", bound=ConnectClient)

Mode = Literal["direct", "asgi"]


def plugin_mux(
    plugin: Plugin,
    *,
    interceptors: Iterable[Interceptor] = (),
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> ServiceMux:
    """The plugin's own services as one ASGI app, with the server interceptors."""
    chain: list[Any] = [SanitizeErrors(), *interceptors]
    apps = [
        s.application(s.impl, interceptors=chain, read_max_bytes=max_message_bytes)
        for s in plugin.services
    ]
    return ServiceMux(apps, max_message_bytes=max_message_bytes)


def inprocess_client(
    plugin: Plugin,
    client_cls: type[ClientT],
    *,
    mode: Mode = "direct",
    interceptors: Iterable[Interceptor] = (),
    server_interceptors: Iterable[Interceptor] = (),
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> ClientT:
    """A typed client of ``plugin``'s service for ``client_cls``, served in this process.

    ``interceptors`` run on the client side and ``server_interceptors`` on the
    server side, as they would over HTTP.
    """
    service = plugin.service(client_cls)
    if service.impl is None:
        raise ValueError(
            f"plugin {plugin.name!r} has no implementation for {service.full_name}; "
            "pass Service(..., impl=...) to run it in process"
        )
    if mode == "direct":
        return direct_client(
            service,
            interceptors=interceptors,
            server_interceptors=[SanitizeErrors(), *server_interceptors],
            read_max_bytes=max_message_bytes,
        )
    if mode == "asgi":
        mux = plugin_mux(
            plugin, interceptors=server_interceptors, max_message_bytes=max_message_bytes
        )
        return client_cls(
            f"http://{plugin.name}.inprocess",
            http_client=pyqwest.Client(ASGITransport(mux)),
            interceptors=list(interceptors),
            send_compression=None,
            accept_compression=[],
        )
    raise ValueError(f"unknown in-process mode {mode!r}: use 'direct' or 'asgi'")
