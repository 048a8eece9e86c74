"""A cache plugin that needs the logger: ``python -m examples.fx_managed.cache``.

It serves ``kv.v1.KVService`` under the plugin name ``cache`` and reports every
write and every miss to the ``capability.logger.v1.Logger`` found at
``PLUGIN_DI_HOST_URL`` (the app's logger). When the logger cannot be reached
it says so on stderr, as a JSON log line the host re-logs at WARNING, and
still serves.
"""

from __future__ import annotations

import json
import os
import sys

from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from examples.kv.store import KVStore
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.gen.capability.logger.v1.logger_pb2 import LogRequest
from plugin_di.plugin import env
from plugin_di.plugin.definition import Dependency, Plugin, Service
from plugin_di.rpc.transport import PluginHTTPClient, connect_client, http_client


class CacheStore(KVStore):
    """A KV store that tells the logger about writes and misses."""

    def __init__(self) -> None:
        super().__init__()
        self._http: PluginHTTPClient | None = None
        self._logger: LoggerClient | None = None

    def _log(self) -> LoggerClient | None:
        url = os.environ.get(env.HOST_URL, "")
        if self._logger is None and url:
            self._http = http_client(url)
            self._logger = connect_client(LoggerClient, url, self._http, timeout_ms=2000)
        return self._logger

    async def _report(self, message: str, **fields: str) -> None:
        logger = self._log()
        if logger is None:
            return
        try:
            await logger.log(LogRequest(level="info", message=message, fields=fields))
        except ConnectError as exc:
            line = {"level": "warn", "msg": "logger unreachable", "code": exc.code.name}
            print(json.dumps(line), file=sys.stderr, flush=True)

    async def put(
        self, request: pb.PutRequest, ctx: RequestContext[pb.PutRequest, pb.PutResponse]
    ) -> pb.PutResponse:
        response = await super().put(request, ctx)
        await self._report("cache write", key=request.key, pid=str(os.getpid()))
        return response

    async def get(
        self, request: pb.GetRequest, ctx: RequestContext[pb.GetRequest, pb.GetResponse]
    ) -> pb.GetResponse:
        response = await super().get(request, ctx)
        if not response.found:
            await self._report("cache miss", key=request.key, pid=str(os.getpid()))
        return response

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        if self._http is not None:
            await self._http.aclose()


plugin = Plugin(
    name="cache",
    version="1.0.0",
    services=[Service(KVServiceASGIApplication, KVServiceClient, impl=CacheStore())],
    requires=[Dependency("logger")],
)


if __name__ == "__main__":
    from plugin_di.plugin.server import serve

    sys.exit(serve(plugin))
