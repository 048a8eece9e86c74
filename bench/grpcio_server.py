"""The grpcio baseline: the KV service on grpc.aio, in its own process.

Prints its port on stdout when ready, then serves until stdin closes.
Run as ``python -m bench.grpcio_server STUBS_DIR``.
"""

from __future__ import annotations

import asyncio
import importlib
import sys

import grpc

from examples.kv.gen.kv.v1 import kv_pb2


async def main(stubs_dir: str) -> None:
    sys.path.insert(0, stubs_dir)
    stubs = importlib.import_module("grpc_stubs.kv.v1.kv_pb2_grpc")
    data: dict[str, bytes] = {}

    class KV(stubs.KVServiceServicer):  # type: ignore[name-defined,misc]
        async def Get(self, request: kv_pb2.GetRequest, context: object) -> kv_pb2.GetResponse:
            value = data.get(request.key)
            return kv_pb2.GetResponse(value=value or b"", found=value is not None)

        async def Put(self, request: kv_pb2.PutRequest, context: object) -> kv_pb2.PutResponse:
            data[request.key] = request.value
            return kv_pb2.PutResponse()

    server = grpc.aio.server()
    stubs.add_KVServiceServicer_to_server(KV(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(grace=1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
