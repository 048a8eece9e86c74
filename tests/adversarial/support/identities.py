"""Runtime identities on a host under test, obtained and used over raw HTTP."""

from __future__ import annotations

from dataclasses import dataclass

from examples.kv.plugin import make_plugin
from plugin_di.gen.connectplugin.v1 import handshake_pb2, registry_pb2
from plugin_di.plugin.host_client import declaration_metadata

from .calls import call
from .servers import HOST_VALID, MAGIC_COOKIE, Method, Surface

HANDSHAKE = Method(HOST_VALID.path, False, False)
REGISTER = Method("/connectplugin.v1.ServiceRegistry/RegisterService", False, False)


@dataclass(frozen=True)
class Creds:
    """A runtime id and its token."""

    runtime_id: str
    token: str

    def headers(self, scheme: bytes = b"Bearer ") -> list[tuple[bytes, bytes]]:
        return [
            (b"x-plugin-runtime-id", self.runtime_id.encode()),
            (b"authorization", scheme + self.token.encode()),
        ]


async def join(surface: Surface, self_id: str, *, provides_kv: bool = False) -> Creds:
    """Handshake as ``self_id`` (declaring the KV service when ``provides_kv``)."""
    request = handshake_pb2.HandshakeRequest(
        core_protocol_version=1,
        app_protocol_version=1,
        magic_cookie_key=MAGIC_COOKIE[0],
        magic_cookie_value=MAGIC_COOKIE[1],
        self_id=self_id,
        client_metadata=declaration_metadata([make_plugin()] if provides_kv else []),
    )
    reply = await call(surface, "connect", HANDSHAKE, request.SerializeToString())
    assert reply.status == 200, reply.body
    response = handshake_pb2.HandshakeResponse.FromString(reply.body)
    return Creds(response.runtime_id, response.runtime_token)


async def register_kv(surface: Surface, creds: Creds, base_url: str) -> str:
    """Register ``creds``' KV service, served at ``base_url``; the registration id."""
    request = registry_pb2.RegisterServiceRequest(
        service_type="kv",
        version="1.0.0",
        endpoint_path="/kv.v1.KVService/",
        metadata={"base_url": base_url},
    )
    reply = await call(surface, "connect", REGISTER, request.SerializeToString(), creds.headers())
    assert reply.status == 200, reply.body
    return str(registry_pb2.RegisterServiceResponse.FromString(reply.body).registration_id)
