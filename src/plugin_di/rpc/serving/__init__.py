"""The serving entry: one server for every listener plugin-di has.

HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN over TLS) on one port, Connect, gRPC and
gRPC-Web alike, with header, idle and connection limits on every connection (`Limits`). A
`ShortPaths` may answer small HTTP/1.1 requests without an ASGI cycle (`shortpath`).

    bound = bind_socket("127.0.0.1:0")
    server = Server(app, bound, ServeConfig(limits=Limits(idle_timeout=30)))
    await server.serve(shutdown_event, ready=lambda: print(bound.url))
"""

from plugin_di.rpc.serving._lifespan import StartupFailed
from plugin_di.rpc.serving._server import Listener, Server, serve
from plugin_di.rpc.serving.config import Limits, ServeConfig
from plugin_di.rpc.serving.shortpath import Answer, AnyOf, Exchange, ShortPathHandler, ShortPaths
from plugin_di.rpc.serving.sockets import BoundSocket, bind_socket

__all__ = [
    "AnyOf",
    "Answer",
    "BoundSocket",
    "Exchange",
    "Limits",
    "Listener",
    "ServeConfig",
    "Server",
    "ShortPathHandler",
    "ShortPaths",
    "StartupFailed",
    "bind_socket",
    "serve",
]
