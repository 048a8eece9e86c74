"""The credential matrix: every host RPC and the router, with every kind of bad credential,
in Connect, gRPC and gRPC-Web, on every server kind of the host, each with its exact code.

Public methods (Handshake, health) answer whatever credentials come with them. The others
answer UNAUTHENTICATED to: none, the runtime id alone, the token alone, a wrong token, the
runtime id with another plugin's token, an expired identity (an injected clock), a revoked
one, a non-ASCII token and another scheme; with valid credentials each gets the code its
request earns (so the refusal is the credentials', not the request's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from examples.kv.gen.kv.v1 import kv_pb2
from plugin_di.clock import FakeClock
from plugin_di.gen.connectplugin.v1 import (
    broker_pb2,
    handshake_pb2,
    lifecycle_pb2,
    registry_pb2,
)
from plugin_di.gen.grpc.health.v1 import health_pb2
from plugin_di.host.server import Host

from .support.answers import answer_code, leaks
from .support.calls import PROTOCOLS, call, supports, wire_protocol
from .support.identities import HANDSHAKE, REGISTER, Creds, join, register_kv
from .support.servers import SERVER_KINDS, Method, Surface, serve_host, serve_plugin

TTL = 100.0


@dataclass
class Platform:
    """A host on loopback with a registered KV provider and identities in every state."""

    host: Host
    surface: Surface
    provider: Creds  # provides kv, registered
    other: Creds  # another live plugin
    expired: Creds
    revoked: Creds
    registration: str  # the provider's


@pytest.fixture(params=SERVER_KINDS)
async def platform(request: pytest.FixtureRequest) -> AsyncIterator[Platform]:
    clock = FakeClock()
    async with (
        serve_plugin("tcp") as (_, kv),
        serve_host(str(request.param), clock, rate_limit=None, runtime_token_ttl=TTL) as (
            host,
            surface,
        ),
    ):
        expired = await join(surface, "expiring")
        clock.advance(TTL / 2)
        provider = await join(surface, "kv", provides_kv=True)
        other = await join(surface, "app")
        revoked = await join(surface, "gone")
        registration = await register_kv(surface, provider, kv.url)
        assert host.tokens.revoke(revoked.runtime_id)
        clock.advance(TTL / 2 + 1)  # the first identity expires, the others live on
        yield Platform(host, surface, provider, other, expired, revoked, registration)


def credentials(p: Platform, case: str) -> list[tuple[bytes, bytes]]:
    """The headers of each credential case."""
    a = p.provider
    id_a = (b"x-plugin-runtime-id", a.runtime_id.encode())
    return {
        "valid": a.headers(),
        "none": [],
        "id only": [id_a],
        "token only": [(b"authorization", b"Bearer " + a.token.encode())],
        "wrong": Creds(a.runtime_id, "A" * 43 + "=").headers(),
        "another plugin's": Creds(a.runtime_id, p.other.token).headers(),
        "expired": p.expired.headers(),
        "revoked": p.revoked.headers(),
        "non-ASCII": [id_a, (b"authorization", "Bearer tök\u00e9n".encode())],
        "wrong scheme": a.headers(b"Basic "),
    }[case]


CASES = (
    "valid",
    "none",
    "id only",
    "token only",
    "wrong",
    "another plugin's",
    "expired",
    "revoked",
    "non-ASCII",
    "wrong scheme",
)

WATCH = Method("/connectplugin.v1.ServiceRegistry/WatchService", False, True)


def _targets(p: Platform) -> list[tuple[Method, bytes, str]]:
    """(method, request, the code valid credentials get); "public" methods take any."""
    routed = f"/services/kv/{p.provider.runtime_id}/kv.v1.KVService/Get"
    return [
        (
            REGISTER,
            registry_pb2.RegisterServiceRequest(
                service_type="kv", version="1.0.0", endpoint_path="/kv.v1.KVService/"
            ).SerializeToString(),
            "ok",
        ),
        (
            Method("/connectplugin.v1.ServiceRegistry/UnregisterService", False, False),
            registry_pb2.UnregisterServiceRequest(registration_id="nope").SerializeToString(),
            "not_found",
        ),
        (
            Method("/connectplugin.v1.ServiceRegistry/DiscoverService", False, False),
            registry_pb2.DiscoverServiceRequest(service_type="kv").SerializeToString(),
            "ok",
        ),
        (
            WATCH,  # a live stream: it ends at its deadline when it was accepted
            registry_pb2.WatchServiceRequest(service_type="kv").SerializeToString(),
            "deadline_exceeded",
        ),
        (
            Method("/connectplugin.v1.PluginLifecycle/ReportHealth", False, False),
            lifecycle_pb2.ReportHealthRequest(state=1).SerializeToString(),  # type: ignore[arg-type]
            "ok",
        ),
        (
            Method("/connectplugin.v1.CapabilityBroker/RequestCapability", False, False),
            broker_pb2.RequestCapabilityRequest(capability_type="logger").SerializeToString(),
            "not_found",
        ),
        (Method(routed, False, False), kv_pb2.GetRequest(key="k").SerializeToString(), "ok"),
    ]


PUBLIC = [
    (
        HANDSHAKE,
        handshake_pb2.HandshakeRequest(
            core_protocol_version=1,
            app_protocol_version=1,
            magic_cookie_key="CONNECT_PLUGIN",
            magic_cookie_value="d3f40b3c2e1a5f8b9c4d7e6a1b2c3d4e",
        ).SerializeToString(),
    ),
    (
        Method("/grpc.health.v1.Health/Check", False, False),
        health_pb2.HealthCheckRequest().SerializeToString(),
    ),
]


def _deadline(protocol: str) -> list[tuple[bytes, bytes]]:
    if protocol == "connect":
        return [(b"connect-timeout-ms", b"300")]
    return [(b"grpc-timeout", b"300m")]


@pytest.mark.parametrize("case", CASES)
async def test_every_host_rpc_and_the_router_check_credentials(
    platform: Platform, case: str
) -> None:
    headers = credentials(platform, case)
    wrong: list[str] = []
    targets = [
        (m, r, v if case == "valid" else "unauthenticated") for m, r, v in _targets(platform)
    ]
    targets += [(m, r, "ok") for m, r in PUBLIC]
    for method, request, expected in targets:
        for protocol in PROTOCOLS:
            if not supports(platform.surface, protocol):
                continue
            sent = headers + (_deadline(protocol) if method is WATCH else [])
            reply = await call(platform.surface, protocol, method, request, sent)
            code = answer_code(reply, wire_protocol(protocol, method))
            if code != expected or leaks(reply):
                wrong.append(f"{method.path} {protocol}: {code} (want {expected}) {leaks(reply)}")
    assert not wrong, "\n".join(wrong)


async def test_another_plugins_valid_credentials_cannot_withdraw_a_registration(
    platform: Platform,
) -> None:
    unregister = Method("/connectplugin.v1.ServiceRegistry/UnregisterService", False, False)
    request = registry_pb2.UnregisterServiceRequest(registration_id=platform.registration)
    for protocol in PROTOCOLS:
        if supports(platform.surface, protocol):
            reply = await call(
                platform.surface,
                protocol,
                unregister,
                request.SerializeToString(),
                platform.other.headers(),
            )
            assert answer_code(reply, protocol) == "permission_denied"
    discover = registry_pb2.DiscoverServiceRequest(service_type="kv").SerializeToString()
    found = await call(
        platform.surface,
        "connect",
        Method("/connectplugin.v1.ServiceRegistry/DiscoverService", False, False),
        discover,
        platform.other.headers(),
    )
    assert answer_code(found, "connect") == "ok"  # still registered
