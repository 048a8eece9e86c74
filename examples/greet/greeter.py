"""The implementation of ``greet.v1.GreeterService``: a class satisfying the generated protocol."""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from examples.greet.gen.greet.v1.greet_connect import GreeterService
from examples.greet.gen.greet.v1.greet_pb2 import GreetRequest, GreetResponse


class Greeter(GreeterService):
    """Says hello; an empty name is INVALID_ARGUMENT."""

    async def greet(
        self, request: GreetRequest, ctx: RequestContext[GreetRequest, GreetResponse]
    ) -> GreetResponse:
        if not request.name:
            raise ConnectError(Code.INVALID_ARGUMENT, "name cannot be empty")
        return GreetResponse(greeting=f"Hello, {request.name}!", served_by="python")
