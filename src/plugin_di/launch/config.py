"""How a plugin process is launched and kept up, as typed, validated dataclasses.

A user states what differs from the defaults with two objects:

* `LaunchOptions`: how each process starts (timeouts, socket, TLS, auth, zygote);
* `Supervision`: what guards each launch (checksum, handshake check) and what happens
  after a crash (restart policy, `Backoff`, `CrashLoop`).

`LaunchOptions.config` resolves the options of one plugin into the `LaunchConfig` a
`plugin_di.launch.process.PluginProcess` runs, taking what the options leave open from
`Settings`; `app_zygote` makes an app's shared zygote from them. Those two are the only
places the launcher reads `Settings`. Durations are in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from plugin_di.plugin import env as plugin_env

if TYPE_CHECKING:
    from plugin_di.launch.zygote import SharedZygote, Zygote
    from plugin_di.settings import Settings

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_CRASH_LOOP",
    "DEFAULT_SUPERVISION",
    "Backoff",
    "CrashLoop",
    "LaunchAdmission",
    "LaunchConfig",
    "LaunchOptions",
    "RestartPolicy",
    "Supervision",
    "app_zygote",
]

_SHA256 = re.compile(r"[0-9a-f]{64}")


class RestartPolicy(StrEnum):
    """When a plugin process that ended by itself is launched again."""

    NEVER = "never"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"

    def restarts(self, exit_code: int | None) -> bool:
        if self is RestartPolicy.ALWAYS:
            return True
        return self is RestartPolicy.ON_FAILURE and exit_code != 0


@dataclass(frozen=True)
class Backoff:
    """Exponential delay before restart ``n`` (1-based): ``min(max, base * factor**(n-1))``."""

    base: float = 0.2
    max: float = 30.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.max < self.base or self.factor < 1:
            raise ValueError(f"{self}: needs 0 <= base <= max and factor >= 1")

    def delay(self, attempt: int) -> float:
        return float(min(self.max, self.base * self.factor ** max(attempt - 1, 0)))


@dataclass(frozen=True)
class CrashLoop:
    """Give up after ``max_crashes`` crashes within ``window`` seconds."""

    max_crashes: int = 5
    window: float = 60.0

    def __post_init__(self) -> None:
        if self.max_crashes < 1 or self.window <= 0:
            raise ValueError(f"{self}: needs max_crashes >= 1 and window > 0")


DEFAULT_BACKOFF = Backoff()
DEFAULT_CRASH_LOOP = CrashLoop()


@dataclass(frozen=True, kw_only=True)
class Supervision:
    """What guards each launch of a plugin process and what follows a crash.

    ``checksum``: the SHA-256 (hex, optionally ``sha256:``) the module file or executable
    must hash to, checked before each launch. ``verify``: call the plugin's
    HandshakeService after each launch (same cookie, a common app version, this plugin
    served). ``restart`` (a `RestartPolicy`; its value, such as ``"never"``, is taken
    too), ``backoff`` and ``crash_loop``: see `plugin_di.launch.supervisor`.
    """

    restart: RestartPolicy = RestartPolicy.ON_FAILURE
    backoff: Backoff = DEFAULT_BACKOFF
    crash_loop: CrashLoop = DEFAULT_CRASH_LOOP
    checksum: str | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "restart", RestartPolicy(self.restart))
        if self.checksum is not None:
            digest = self.checksum.strip().lower().removeprefix("sha256:")
            if not _SHA256.fullmatch(digest):
                raise ValueError(
                    f"checksum {self.checksum!r} is not a SHA-256: 64 hex digits, "
                    "optionally prefixed sha256: (plugin-di checksum prints it)"
                )


DEFAULT_SUPERVISION = Supervision()


class LaunchAdmission(Protocol):
    """A host in this process that admits a launched plugin by its launch secret
    (`plugin_di.host.admission.Admission`)."""

    def expect_launch(
        self, secret: str, self_id: str, provides: Iterable[str]
    ) -> Callable[[], None]: ...


@dataclass(frozen=True, kw_only=True)
class LaunchOptions:
    """How a plugin process is started; None takes the default named.

    ``start_timeout``: wait for the handshake line (None: ``Settings.plugin_start_timeout``).
    ``shutdown_grace``: time the plugin gets after the Shutdown call before SIGTERM (None:
    ``Settings.shutdown_grace``); ``kill_timeout``: from SIGTERM to SIGKILL.
    ``unix_socket``: serve on a private Unix socket, called over HTTP/1.1 (the fastest
    channel); False: on 127.0.0.1 TCP. Either serves every protocol.
    ``auto_mtls``: the launcher makes an ephemeral host certificate, the plugin its own,
    and each side trusts only the other's (the plugin then serves TCP with TLS).
    ``require_auth``: the plugin accepts only calls carrying this launch's secret (None:
    on, except when the plugin joins a host, whose router calls it too).
    ``zygote``: True forks a ``python -m`` plugin built by an App from the app's warm
    zygote; False spawns it; a started `plugin_di.launch.zygote.Zygote` forks it from that.
    ``join_token``: the credential for a host elsewhere (see docs/security.md#admission).
    ``protocol_versions``: the app protocol versions offered (None: the plugin's).
    """

    start_timeout: float | None = None
    shutdown_grace: float | None = None
    kill_timeout: float = 2.0
    unix_socket: bool = True
    auto_mtls: bool = False
    require_auth: bool | None = None
    zygote: Zygote | bool = True
    join_token: str | None = None
    protocol_versions: Sequence[int] | None = None

    def __post_init__(self) -> None:
        _check_durations(self, "start_timeout", "kill_timeout")
        if self.shutdown_grace is not None and self.shutdown_grace < 0:
            raise ValueError(f"shutdown_grace must be >= 0, not {self.shutdown_grace}")
        if self.protocol_versions is not None:
            versions = tuple(self.protocol_versions)
            if not versions or any(v < 1 for v in versions):
                raise ValueError(f"protocol_versions must be versions >= 1, not {versions}")
            object.__setattr__(self, "protocol_versions", versions)

    def config(
        self,
        name: str,
        command: Sequence[str],
        *,
        settings: Settings,
        protocol_versions: Sequence[int],
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        host_url: str | None = None,
        admission: LaunchAdmission | None = None,
        provides: Sequence[str] = (),
        zygote: Zygote | SharedZygote | None = None,
    ) -> LaunchConfig:
        """The `LaunchConfig` of plugin ``name``: these options, the rest from ``settings``.

        ``protocol_versions``: the plugin's own, offered unless the options name others.
        ``admission``: the in-process host at ``host_url`` admitting it to ``provides``.
        ``zygote``: what it forks from (`zygote` True resolved by the caller).
        """
        return LaunchConfig(
            name=name,
            command=tuple(command),
            env=dict(env or {}),
            cwd=cwd,
            protocol_versions=tuple(self.protocol_versions or protocol_versions),
            host_url=host_url,
            admission=admission,
            provides=tuple(provides),
            join_token=self.join_token,
            unix_socket=self.unix_socket,
            auto_mtls=self.auto_mtls,
            require_auth=self.require_auth if self.require_auth is not None else not host_url,
            start_timeout=_or(self.start_timeout, settings.plugin_start_timeout),
            shutdown_grace=_or(self.shutdown_grace, settings.shutdown_grace),
            kill_timeout=self.kill_timeout,
            zygote=zygote,
        )


@dataclass(frozen=True)
class LaunchConfig:
    """How to start one plugin process, every value resolved. Durations are in seconds."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    inherit_env: bool = True
    magic_cookie_key: str = plugin_env.DEFAULT_MAGIC_COOKIE_KEY
    magic_cookie_value: str = plugin_env.DEFAULT_MAGIC_COOKIE_VALUE
    protocol_versions: Sequence[int] = (1,)
    host_url: str | None = None
    admission: LaunchAdmission | None = None
    """The in-process host at ``host_url``: each launch registers its secret with it,
    admitting the plugin (as ``name``) to provide ``provides``, and withdraws it at exit."""
    provides: Sequence[str] = ()
    join_token: str | None = None
    """A join token for a host elsewhere (the operator's), sent instead of the secret."""
    unix_socket: bool = False
    auto_mtls: bool = False
    require_auth: bool = False
    start_timeout: float = 15.0
    shutdown_grace: float = 5.0
    kill_timeout: float = 2.0
    stderr_tail_lines: int = 20
    zygote: Zygote | SharedZygote | None = None
    """Fork ``python -m MODULE`` commands from this warm zygote instead of spawning them.

    A `Zygote` refuses other commands; a `SharedZygote` (an app's) leaves them, and any
    command it cannot run as a spawn would, to be spawned."""

    def __post_init__(self) -> None:
        _check_durations(self, "start_timeout", "kill_timeout")
        if self.shutdown_grace < 0 or self.stderr_tail_lines < 0:
            raise ValueError(f"plugin {self.name!r}: shutdown_grace and stderr_tail_lines >= 0")


def app_zygote(settings: Settings) -> SharedZygote:
    """An app's shared zygote, with the start budget ``settings`` leave it."""
    from plugin_di.launch.zygote import SharedZygote  # the zygote's modules: only when used

    # a zygote slower than this leaves the plugins to be spawned: well within the hook's budget
    ready = min(settings.plugin_start_timeout, settings.hook_timeout / 2)
    return SharedZygote(ready_timeout=ready)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _check_durations(options: object, *names: str) -> None:
    for name in names:
        value = getattr(options, name)
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
