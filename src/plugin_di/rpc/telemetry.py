"""The seam observability plugs into: the hooks every layer calls, and where they are installed.

Nothing here imports OpenTelemetry. `plugin_di.otel.instrument` installs a `Telemetry`
(`install`); until then `current()` is None and every hook costs one global read. The
layers ask at the moment they build a client or a server, route a call or see an event:

- the clients' interceptor chains (``InterceptorChain``, ``HostClient.routed_client``)
  put `Telemetry.client_interceptors` outermost;
- the servers (``PluginServer``, in-memory plugins) put `Telemetry.server_interceptors`
  outermost: they are metadata interceptors, so the unary short path runs them too;
- the host's router wraps each routed call in `Telemetry.route`, which gives the headers
  to forward (carrying the router's own span) and is ended when the answer went back;
- the app's plugin events (started, crashed, restarted...) and the host's health changes
  become metrics through `Telemetry.plugin_event` and `Telemetry.health_changed`;
- launched plugin processes get `Telemetry.child_env` (``PLUGIN_DI_OTEL=1``) over the
  app's environment and under the plugin's own ``env``, so their servers trace too
  (`ENV_SWITCH`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from plugin_di.rpc.asgi import Send

__all__ = ["ENV_SWITCH", "RouteCall", "Telemetry", "current", "enabled_in", "install"]

ENV_SWITCH = "PLUGIN_DI_OTEL"
"""Set to ``1`` in a plugin process's environment: it serves with OpenTelemetry, its
exporters chosen by the standard ``OTEL_*`` variables (needs ``plugin-di[otel]``)."""

RawHeaders = list[tuple[bytes, bytes]]


class RouteCall(Protocol):
    """One routed call as the host's router sees it; ``end`` is called exactly once."""

    headers: RawHeaders
    """The headers to forward: the caller's, with the trace context of the router's span."""

    def observe(self, send: Send) -> Send:
        """``send``, watched: the answer's status, headers and trailers give its code."""

    def end(self, code: str | None = None) -> None:
        """The call is over; ``code`` (a Connect code name such as ``unavailable``) when the
        router refused it itself, else the one `observe` saw, if any."""


class Telemetry(Protocol):
    """What an observability backend does at each hook (see the module docstring)."""

    def client_interceptors(self) -> Sequence[Any]: ...

    def server_interceptors(self) -> Sequence[Any]: ...

    def route(self, method: str, provider: str, headers: RawHeaders) -> RouteCall: ...

    def plugin_event(self, plugin: str, kind: str, health: str | None) -> None:
        """A plugin event of the app: ``kind`` is ``started``, ``crashed``, ``restarted``,
        ``gave_up``, ``stopped`` or ``breaker``; ``health`` the state it leaves the plugin in
        (``HEALTHY``, ``DEGRADED``, ``UNHEALTHY``; None: no longer tracked)."""

    def health_changed(self, subject: str, state: str | None) -> None:
        """A host's health report of ``subject`` (a runtime id) changed; None: forgotten."""

    def child_env(self) -> Mapping[str, str]: ...


_current: Telemetry | None = None


def current() -> Telemetry | None:
    """The installed telemetry, or None (the default: nothing is observed)."""
    return _current


def install(telemetry: Telemetry | None) -> Telemetry | None:
    """Install ``telemetry`` (None removes it); returns what was installed before."""
    global _current
    previous, _current = _current, telemetry
    return previous


def enabled_in(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` asks a plugin process to serve with telemetry (`ENV_SWITCH`)."""
    return environ.get(ENV_SWITCH, "").strip().lower() in ("1", "true", "yes", "on")
