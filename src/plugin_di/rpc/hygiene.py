"""Response fixes between connectrpc/`ServiceMux` and hypercorn 0.18 (workarounds).

`serve_asgi` applies them to every app it serves (plugins and the host alike); the
fast channel (uvicorn) needs neither.

1. Send nothing more on a stream once its client is gone. After a client
   cancels an HTTP/2 stream (say, it stops reading a server stream),
   connectrpc still writes the end of the stream, and hypercorn's send for it
   waits forever on a stream that will never drain. The request then never
   finishes, and a graceful stop waits out its whole grace period for it.

2. Give gRPC errors real trailers. A "trailers-only" gRPC error written
   through ASGI (status in the headers, then an empty final body, as
   ``ServiceMux.send_error`` does for an unknown method) reaches the wire as
   HEADERS then an empty DATA frame ending the stream, which grpcio reports
   as UNKNOWN "Stream removed". Moving ``grpc-status`` and ``grpc-message``
   into ASGI trailers gives clients the code that was meant.

(`ServiceMux` already drains unread request bodies, the other half of keeping
HTTP/2 connections healthy.)
"""

from __future__ import annotations

from typing import Any

from plugin_di.rpc.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["StreamHygiene"]

_STATUS_HEADERS = (b"grpc-status", b"grpc-message", b"grpc-status-details-bin")


def _is_grpc(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-type":
            kind = bytes(value).lower()
            return kind.startswith(b"application/grpc") and not kind.startswith(
                b"application/grpc-web"
            )
    return False


class StreamHygiene:
    """ASGI middleware: drop sends after a disconnect; move gRPC status into trailers."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        disconnected = False
        can_trail = "http.response.trailers" in scope.get("extensions", {}) and _is_grpc(scope)
        moved: list[Any] = []

        async def tracking_receive() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def guarded_send(message: Message) -> None:
            if disconnected:
                return
            kind = message["type"]
            if can_trail and kind == "http.response.start" and not message.get("trailers"):
                headers = list(message.get("headers", ()))
                status = [(k, v) for k, v in headers if k.lower() in _STATUS_HEADERS]
                if status:
                    moved.extend(status)
                    rest = [(k, v) for k, v in headers if k.lower() not in _STATUS_HEADERS]
                    rest = [(k, v) for k, v in rest if k.lower() != b"content-length"]
                    message = {**message, "headers": rest, "trailers": True}
            elif moved and kind == "http.response.body" and not message.get("more_body", False):
                await send(message)
                await send(
                    {"type": "http.response.trailers", "headers": moved, "more_trailers": False}
                )
                return
            await send(message)

        await self._app(scope, tracking_receive, guarded_send)
