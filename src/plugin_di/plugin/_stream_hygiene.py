"""Send nothing more on a stream once its client is gone (a hypercorn 0.18 workaround).

After a client cancels an HTTP/2 stream (say, it stops reading a server
stream), connectrpc still writes the end of the stream, and hypercorn's send
for it waits forever on a stream that will never drain. The request then
never finishes, and a graceful stop waits out its whole grace period for it.
Dropping sends after ``http.disconnect`` lets the request end at once.
(`ServiceMux` already drains unread request bodies, the other half of keeping
HTTP/2 connections healthy.)
"""

from __future__ import annotations

from plugin_di.rpc.asgi import ASGIApp, Message, Receive, Scope, Send


class StreamHygiene:
    """ASGI middleware: after the client disconnected, responses go nowhere."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        disconnected = False

        async def tracking_receive() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def guarded_send(message: Message) -> None:
            if not disconnected:
                await send(message)

        await self._app(scope, tracking_receive, guarded_send)
