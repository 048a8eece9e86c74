"""A cache plugin that requires the ``logger`` service: ``python -m examples.cache``.

It serves ``kv.v1.KVService`` as service type ``cache``. It finds the logger
through the host's registry (it watches it, so it reports DEGRADED while no
logger is there and HEALTHY once one appears) and calls it through the host's
router, never directly.
"""

from __future__ import annotations

import logging

from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from examples.kv.gen.kv.v1 import kv_pb2 as pb
from examples.kv.gen.kv.v1.kv_connect import KVServiceASGIApplication, KVServiceClient
from examples.kv.store import KVStore
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.gen.capability.logger.v1.logger_pb2 import LogRequest
from plugin_di.plugin import HostSession
from plugin_di.plugin.definition import Dependency, Plugin, Service

log = logging.getLogger("examples.cache")


class CacheStore(KVStore):
    """A KV store that tells the logger (found through the host) about writes and misses."""

    def __init__(self) -> None:
        super().__init__()
        self.session: HostSession | None = None
        self._logger: tuple[str, LoggerClient] | None = None

    def attach(self, session: HostSession) -> None:
        """Use ``session`` (the plugin's host session) to reach the logger."""
        self.session = session

    def _logger_client(self) -> tuple[str, LoggerClient] | None:
        """The routed URL of the logger in use and a client for it, or None."""
        if self.session is None:
            return None
        endpoint = self.session.endpoint("logger")
        if endpoint is None:
            return None
        if self._logger is None or self._logger[0] != endpoint.endpoint_url:
            client = self.session.client.routed_client(LoggerClient, endpoint)
            self._logger = (endpoint.endpoint_url, client)
        return self._logger

    async def report(self, message: str, **fields: str) -> bool:
        """Log through the routed logger; False when there is none or it failed.

        The record carries ``via``: the routed URL the registry gave for the logger.
        """
        found = self._logger_client()
        if found is None:
            return False
        via, logger = found
        try:
            await logger.log(
                LogRequest(level="info", message=message, fields={**fields, "via": via})
            )
        except ConnectError as exc:
            log.warning("logger unreachable through the host: %s", exc.code.name)
            return False
        return True

    async def put(
        self, request: pb.PutRequest, ctx: RequestContext[pb.PutRequest, pb.PutResponse]
    ) -> pb.PutResponse:
        response = await super().put(request, ctx)
        await self.report("cache write", key=request.key)
        return response

    async def get(
        self, request: pb.GetRequest, ctx: RequestContext[pb.GetRequest, pb.GetResponse]
    ) -> pb.GetResponse:
        response = await super().get(request, ctx)
        if not response.found:
            await self.report("cache miss", key=request.key)
        return response


def make_plugin() -> tuple[Plugin, CacheStore]:
    """A cache plugin and its store."""
    store = CacheStore()
    plugin = Plugin(
        name="cache",
        version="1.0.0",
        services=[Service(KVServiceASGIApplication, KVServiceClient, impl=store, type="cache")],
        requires=[Dependency("logger")],
    )
    return plugin, store


plugin, store = make_plugin()
