"""The conformance client: each case the runner sends, called with plugin-di's clients.

``python -m conformance.client --h1 lean`` is the COMMAND of ``connectconformance --mode
client``. It reads length-prefixed ``ClientCompatRequest``s on stdin, makes each call with a
generated client on plugin-di's transports (`plugin_di.rpc.transport.http_client`; with
``--api blocking``, ``XxxClientSync`` on `sync_http_client`), and writes a length-prefixed
``ClientCompatResponse`` per case, in the order the cases finish.

The transport follows the case: ``https://`` (pyqwest, ALPN, the runner's CA and client
certificate) with TLS; ``http://`` with HTTP/2 prior knowledge (h2c) for HTTP/2 cleartext; and
for HTTP/1.1 cleartext the transport ``--h1`` names: ``lean`` (``http://`` as it is by default,
the lean HTTP/1.1 transport) or ``pyqwest`` (``http://`` in pyqwest's HTTP/1.1 mode). The call
itself
follows upstream testing_clients.md, cancellations included.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

from connectrpc.client import ResponseMetadata
from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from connectrpc.compression.gzip import GzipCompression
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from connectrpc.request import Headers
from google.protobuf import any_pb2

from conformance.calls import Call, invoke, invoke_blocking
from conformance.gen import client_compat_pb2, config_pb2, service_connect, service_pb2
from conformance.wire import frame, read_frame_async
from plugin_di.rpc.errors import TYPE_URL_PREFIX
from plugin_di.rpc.tls import ClientTLS
from plugin_di.rpc.transport import (
    HTTPMode,
    PluginHTTPClient,
    PluginSyncHTTPClient,
    connect_client,
    http_client,
    sync_http_client,
)

log = logging.getLogger("conformance.client")

CASE_DEADLINE_SECONDS = 30.0
"""A case still unanswered after this long is reported as failed (the runner would wait forever)."""

H1_TRANSPORTS = ("lean", "pyqwest")

_PROTOCOLS = {
    config_pb2.PROTOCOL_CONNECT: ProtocolType.CONNECT,
    config_pb2.PROTOCOL_GRPC: ProtocolType.GRPC,
    config_pb2.PROTOCOL_GRPC_WEB: ProtocolType.GRPC_WEB,
}


def transport_for(case: Any, h1: str, *, blocking: bool = False) -> Any:
    """plugin-di's HTTP client for the case's HTTP version and TLS settings.

    ``blocking``: `sync_http_client` (for ``XxxClientSync``) instead of `http_client`; a read
    timeout then bounds each call, since a blocking call cannot be given up on from outside.
    """
    address = f"{case.host}:{case.port}"
    version = case.http_version
    if version not in (config_pb2.HTTP_VERSION_1, config_pb2.HTTP_VERSION_2):
        raise ValueError(f"HTTP version {config_pb2.HTTPVersion.Name(version)} is not supported")
    mode = HTTPMode.HTTP1 if version == config_pb2.HTTP_VERSION_1 else HTTPMode.H2
    make: Any = sync_http_client if blocking else http_client
    options: dict[str, Any] = {"read_timeout": CASE_DEADLINE_SECONDS} if blocking else {}
    if case.server_tls_cert:
        creds = case.client_tls_creds
        tls = ClientTLS(case.server_tls_cert, creds.cert or None, creds.key or None)
        return make(f"https://{address}", tls=tls, http_version=mode, **options)
    if mode is HTTPMode.HTTP1 and h1 == "lean":
        return make(f"http://{address}", **options)  # the default: the lean HTTP/1.1 transport
    return make(f"http://{address}", http_version=mode, **options)


def connect_stub(case: Any, http: PluginHTTPClient | PluginSyncHTTPClient) -> Any:
    """The generated client for the case: ``connect_client`` unless the codec or compression
    differ from its defaults (proto, no compression), then the same on the case's settings."""
    stubs = service_connect
    cls: Any = stubs.ConformanceServiceClient
    raw: Any = http
    if isinstance(http, PluginSyncHTTPClient):  # connect_client unwraps it; the class does not
        cls, raw = stubs.ConformanceServiceClientSync, http.client
    protocol = _PROTOCOLS[case.protocol]
    limit = case.message_receive_limit or None
    if case.codec == config_pb2.CODEC_PROTO and case.compression == config_pb2.COMPRESSION_IDENTITY:
        return connect_client(cls, http.address, http, protocol=protocol, read_max_bytes=limit)
    if case.compression not in (config_pb2.COMPRESSION_IDENTITY, config_pb2.COMPRESSION_GZIP):
        raise ValueError(f"compression {config_pb2.Compression.Name(case.compression)}")
    gzip = [GzipCompression()] if case.compression == config_pb2.COMPRESSION_GZIP else []
    json = case.codec == config_pb2.CODEC_JSON
    return cls(
        http.address,
        codec=google_protobuf_json_codec() if json else google_protobuf_binary_codec(),
        protocol=protocol,
        send_compression=gzip[0] if gzip else None,
        accept_compression=gzip,
        read_max_bytes=limit,
        http_client=raw,
    )


def _headers(pairs: Headers) -> list[service_pb2.Header]:
    return [service_pb2.Header(name=name, value=list(pairs.getall(name))) for name in pairs]


def _request_headers(case: Any) -> Headers:
    headers = Headers()
    for header in case.request_headers:
        for value in header.value:
            headers.add(header.name, value)
    return headers


def _error(exc: ConnectError) -> service_pb2.Error:
    details = [
        any_pb2.Any(type_url=TYPE_URL_PREFIX + d.type_name, value=d.message_bytes)
        for d in exc.details
    ]
    return service_pb2.Error(code="CODE_" + exc.code.name, message=exc.message, details=details)


def _record(result: Any, call: Call, metadata: ResponseMetadata) -> None:
    result.payloads.extend(call.payloads)
    result.num_unsent_requests = call.unsent
    result.response_headers.extend(_headers(metadata.headers))
    result.response_trailers.extend(_headers(metadata.trailers))


def _refused(answer: Any, exc: Exception) -> Any:
    answer.error.message = f"cannot make this call: {exc}"
    return answer


def _failed(answer: Any, case: Any, exc: Exception) -> Any:
    # A client bug must not stop the other cases: this case fails, with the reason.
    log.error("%s: unexpected failure", case.test_name, exc_info=exc)
    answer.error.message = f"{type(exc).__name__}: {exc}"
    return answer


async def run_case(case: Any, h1: str) -> Any:
    """Make the call ``case`` (a ClientCompatRequest) describes; the ClientCompatResponse."""
    answer = client_compat_pb2.ClientCompatResponse(test_name=case.test_name)
    try:
        http = transport_for(case, h1)
        stub = connect_stub(case, http)
        call = Call.from_case(case)
    except (ValueError, KeyError) as exc:
        return _refused(answer, exc)
    async with http:
        with ResponseMetadata() as metadata:
            try:
                async with asyncio.timeout(CASE_DEADLINE_SECONDS):
                    await invoke(stub, call, _request_headers(case))
            except ConnectError as exc:
                answer.response.error.CopyFrom(_error(exc))
            except Exception as exc:
                return _failed(answer, case, exc)
        _record(answer.response, call, metadata)
    return answer


def run_case_blocking(case: Any, h1: str) -> Any:
    """`run_case` with the blocking client (``XxxClientSync`` on `sync_http_client`)."""
    answer = client_compat_pb2.ClientCompatResponse(test_name=case.test_name)
    try:
        call = Call.from_case(case)
        if call.cancel is not None:
            raise ValueError("the blocking client cannot cancel a call in flight")
        http = transport_for(case, h1, blocking=True)
        stub = connect_stub(case, http)
    except (ValueError, KeyError) as exc:
        return _refused(answer, exc)
    with http, ResponseMetadata() as metadata:
        try:
            invoke_blocking(stub, call, _request_headers(case))
        except ConnectError as exc:
            answer.response.error.CopyFrom(_error(exc))
        except Exception as exc:
            return _failed(answer, case, exc)
        _record(answer.response, call, metadata)
    return answer


async def _stdin_reader() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve_cases(
    reader: asyncio.StreamReader,
    out: BinaryIO,
    run: Callable[[Any], Awaitable[Any]],
    parallel: int,
) -> None:
    """Run every case read from ``reader``, ``parallel`` at a time; write each answer."""
    slots = asyncio.Semaphore(parallel)

    async def one(case: Any) -> None:
        async with slots:
            answer = await run(case)
        out.write(frame(answer))  # one thread writes: frames never interleave
        out.flush()

    async with asyncio.TaskGroup() as group:
        while (data := await read_frame_async(reader)) is not None:
            group.create_task(one(client_compat_pb2.ClientCompatRequest.FromString(data)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--h1", choices=H1_TRANSPORTS, default="lean")
    parser.add_argument("--api", choices=("async", "blocking"), default="async")
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

    async def main_async() -> None:
        reader = await _stdin_reader()
        if args.api == "blocking":
            run = lambda c: asyncio.to_thread(run_case_blocking, c, args.h1)  # noqa: E731
        else:
            run = lambda c: run_case(c, args.h1)  # noqa: E731
        await serve_cases(reader, sys.stdout.buffer, run, args.parallel)

    asyncio.run(main_async())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
