"""``GET /plugin-di/v1/plugins``: what a host knows of its plugins, as JSON (``plugin-di ls``).

Every joined plugin (its runtime id, self id and version), the services it registered (type,
version, routed URL) and its last health report. The connectplugin protocol has no such
listing (the registry answers per service type), so this is a plugin-di extension, read-only.

The caller needs a credential the host accepts, and joins nothing: either a live runtime
identity (``Authorization: Bearer <runtime token>`` with ``X-Plugin-Runtime-ID``), or what
would admit a handshake (docs/security.md#admission) for the self id in ``X-Plugin-Self-ID``:
a join token, a client certificate named by an ``--allow-cert`` entry, an allow-list entry,
or open registration. Refusals are Connect errors (UNAUTHENTICATED, PERMISSION_DENIED).
"""

from __future__ import annotations

import json
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.host.admission import Admission
from plugin_di.host.auth import RUNTIME_ID_HEADER, TokenValidator, check_credentials
from plugin_di.host.client_cert import current_client_cert_name
from plugin_di.host.registry import ServiceRegistry, routed_url
from plugin_di.host.tracker import HealthTracker
from plugin_di.rpc.asgi import Receive, Scope, Send, send_error
from plugin_di.rpc.interceptors.ratelimit import Rate, TokenBucketLimiter

INSPECT_PREFIX = "/plugin-di/v1/"
PLUGINS_PATH = INSPECT_PREFIX + "plugins"
SELF_ID_HEADER = "x-plugin-self-id"


class PlatformInspector:
    """The ASGI app behind ``INSPECT_PREFIX``."""

    def __init__(
        self,
        registry: ServiceRegistry,
        tracker: HealthTracker,
        tokens: TokenValidator,
        admission: Admission,
        *,
        limiter: TokenBucketLimiter | None = None,
        rate: Rate | None = None,
    ) -> None:
        """``limiter`` and ``rate`` (the host's) bound the requests of each peer address,
        counted before the credential is checked, so a flood of refused requests is bounded."""
        self._registry = registry
        self._tracker = tracker
        self._tokens = tokens
        self._admission = admission
        self._limiter = limiter
        self._rate = rate

    def snapshot(self) -> dict[str, Any]:
        """Every plugin the host knows, with its registrations and health."""
        store = self._registry.store
        plugins = []
        for record in sorted(store.plugins(), key=lambda r: (r.self_id, r.runtime_id)):
            report = self._tracker.get(record.runtime_id)
            services = [
                {
                    "type": r.service_type,
                    "version": r.version,
                    "endpoint": routed_url(r.service_type, r.runtime_id),
                }
                for r in store.registrations_of(record.runtime_id)
            ]
            plugins.append(
                {
                    "runtimeId": record.runtime_id,
                    "selfId": record.self_id,
                    "version": record.version,
                    "health": report.state_name if report is not None else "UNREPORTED",
                    "reason": report.reason if report is not None else "",
                    "unavailableDependencies": list(
                        report.unavailable_dependencies if report is not None else ()
                    ),
                    "services": services,
                }
            )
        return {"plugins": plugins}

    def _check_rate(self, scope: Scope) -> None:
        limiter, rate = self._limiter, self._rate
        client = scope.get("client")
        key = f"addr:{client[0] if client else ''}|inspect"
        if limiter is not None and rate is not None and not limiter.allow(key, rate):
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"rate limit exceeded for {PLUGINS_PATH}: {rate.rps:g}/s, burst {rate.burst}; "
                "slow down",
            )

    def _authenticate(self, scope: Scope) -> None:
        headers: dict[str, str] = {}
        for key, value in scope.get("headers", ()):
            headers.setdefault(bytes(key).decode("latin-1").lower(), bytes(value).decode("latin-1"))
        if headers.get(RUNTIME_ID_HEADER):
            check_credentials(headers.get, self._tokens)
            return
        self_id = headers.get(SELF_ID_HEADER, "")
        if not self_id:
            raise ConnectError(
                Code.UNAUTHENTICATED,
                "send a credential the host admits and the self id it names in "
                "X-Plugin-Self-ID (plugin-di ls --token JOIN_TOKEN sends both)",
            )
        client = scope.get("client")
        self._admission.admit(
            self_id,
            authorization=headers.get("authorization"),
            certificate_name=current_client_cert_name(),
            peer=f"{client[0]}:{client[1]}" if client else None,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != PLUGINS_PATH:
            await send_error(scope, send, Code.NOT_FOUND, f"no such path: use GET {PLUGINS_PATH}")
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await send_error(scope, send, Code.UNIMPLEMENTED, f"use GET {PLUGINS_PATH}")
            return
        try:
            self._check_rate(scope)
            self._authenticate(scope)
        except ConnectError as error:
            await send_error(scope, send, error.code, error.message)
            return
        body = json.dumps(self.snapshot()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body if scope["method"] == "GET" else b""}
        )
