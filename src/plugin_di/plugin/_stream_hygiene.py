"""Two workarounds for hypercorn 0.18, so one bad stream never costs a connection or a stop.

1. Finish reading a request body before the response ends.

`ServiceMux` refuses an oversized body from its Content-Length without
reading it. Over HTTP/2, hypercorn 0.18 forgets a stream once its response
ended, and a DATA frame still arriving for it raises KeyError inside the
connection: the whole connection drops, so the caller's *next* call fails
with "broken pipe". Over HTTP/1.1 the server closes the connection while the
client is still writing, and the client reports a broken pipe instead of the
answer. This middleware reads (and discards) what the app left unread before
it lets the last response message out.

2. Send nothing more once the client is gone. After a client cancelled an
HTTP/2 stream (say, closed a server stream early), hypercorn's end-of-stream
send for it waits forever for flow control, so the request never finishes
and a graceful stop waits out its whole grace period.
"""

from __future__ import annotations

from plugin_di.rpc.asgi import ASGIApp, Message, Receive, Scope, Send

# Beyond this, reading a body only to keep the connection is not worth it.
MAX_DRAIN_BYTES = 64 * 1024 * 1024


class StreamHygiene:
    """ASGI middleware: drain unread request bodies; drop sends after a disconnect."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        body_done = False
        disconnected = False
        trailers = False

        async def tracking_receive() -> Message:
            nonlocal body_done, disconnected
            message = await receive()
            kind = message["type"]
            disconnected = disconnected or kind == "http.disconnect"
            if disconnected or (kind == "http.request" and not message.get("more_body", False)):
                body_done = True
            return message

        async def draining_send(message: Message) -> None:
            nonlocal trailers
            if disconnected:
                return
            kind = message["type"]
            if kind == "http.response.start":
                trailers = bool(message.get("trailers", False))
            last = (
                kind == "http.response.body"
                and not message.get("more_body", False)
                and not trailers
            ) or (kind == "http.response.trailers" and not message.get("more_trailers", False))
            if last:
                drained = 0
                while not body_done and drained <= MAX_DRAIN_BYTES:
                    drained += len((await tracking_receive()).get("body", b""))
            await send(message)

        await self._app(scope, tracking_receive, draining_send)
