"""Registry state behind an interface: the in-memory store here, the shared one in
`plugin_di.host.shared` (several hosts on Redis).

The store holds plain data (plugins, their declarations, registrations and
allow-lists); behaviour (authorization, selection, watch events) lives in the
registry, so a store shared by several hosts only has to implement this protocol
(and `ObservableStore`, to tell the registry of changes made by other hosts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Declaration:
    """A service type a plugin says it provides."""

    type: str
    version: str = "1.0.0"
    path: str = ""


@dataclass(frozen=True)
class Requirement:
    """A service type a plugin needs."""

    type: str
    min_version: str = ""
    required_for_startup: bool = True
    watch_for_changes: bool = True


@dataclass(frozen=True)
class PluginRecord:
    """A live plugin: its identity and what it declared."""

    runtime_id: str
    self_id: str
    version: str = ""
    provides: tuple[Declaration, ...] = ()
    requires: tuple[Requirement, ...] = ()
    base_url: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def provided_types(self) -> frozenset[str]:
        return frozenset(d.type for d in self.provides)


@dataclass(frozen=True)
class Registration:
    """One service registered by one plugin."""

    registration_id: str
    runtime_id: str
    service_type: str
    version: str
    endpoint_path: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    registered_at: float = 0.0


class RegistryStore(Protocol):
    """Where the registry keeps its state."""

    def put_plugin(self, record: PluginRecord) -> None: ...
    def get_plugin(self, runtime_id: str) -> PluginRecord | None: ...
    def remove_plugin(self, runtime_id: str) -> PluginRecord | None: ...
    def plugins(self) -> Sequence[PluginRecord]: ...

    def set_allowed(self, runtime_id: str, types: frozenset[str] | None) -> None: ...
    def allowed(self, runtime_id: str) -> frozenset[str] | None: ...

    def add_registration(self, registration: Registration) -> None: ...
    def remove_registration(self, registration_id: str) -> Registration | None: ...
    def get_registration(self, registration_id: str) -> Registration | None: ...
    def registrations(self, service_type: str) -> Sequence[Registration]: ...
    def registrations_of(self, runtime_id: str) -> Sequence[Registration]: ...
    def service_types(self) -> Sequence[str]: ...


@runtime_checkable
class ObservableStore(Protocol):
    """A store that other hosts change too: it tells the registry which service types
    changed under it, so the registry's watchers hear of them."""

    def subscribe(self, on_change: Callable[[str], None]) -> None: ...


class InMemoryStore:
    """The single-host store: dicts, in insertion order (so "first" is well defined)."""

    def __init__(self) -> None:
        self._plugins: dict[str, PluginRecord] = {}
        self._allowed: dict[str, frozenset[str]] = {}
        self._registrations: dict[str, Registration] = {}
        self._by_type: dict[str, dict[str, Registration]] = {}

    def put_plugin(self, record: PluginRecord) -> None:
        self._plugins[record.runtime_id] = record

    def get_plugin(self, runtime_id: str) -> PluginRecord | None:
        return self._plugins.get(runtime_id)

    def remove_plugin(self, runtime_id: str) -> PluginRecord | None:
        self._allowed.pop(runtime_id, None)
        return self._plugins.pop(runtime_id, None)

    def plugins(self) -> Sequence[PluginRecord]:
        return list(self._plugins.values())

    def set_allowed(self, runtime_id: str, types: frozenset[str] | None) -> None:
        if types is None:
            self._allowed.pop(runtime_id, None)
        else:
            self._allowed[runtime_id] = types

    def allowed(self, runtime_id: str) -> frozenset[str] | None:
        return self._allowed.get(runtime_id)

    def add_registration(self, registration: Registration) -> None:
        self._registrations[registration.registration_id] = registration
        by_type = self._by_type.setdefault(registration.service_type, {})
        by_type[registration.registration_id] = registration

    def remove_registration(self, registration_id: str) -> Registration | None:
        registration = self._registrations.pop(registration_id, None)
        if registration is not None:
            by_type = self._by_type.get(registration.service_type, {})
            by_type.pop(registration_id, None)
            if not by_type:
                self._by_type.pop(registration.service_type, None)
        return registration

    def get_registration(self, registration_id: str) -> Registration | None:
        return self._registrations.get(registration_id)

    def registrations(self, service_type: str) -> Sequence[Registration]:
        return list(self._by_type.get(service_type, {}).values())

    def registrations_of(self, runtime_id: str) -> Sequence[Registration]:
        return [r for r in self._registrations.values() if r.runtime_id == runtime_id]

    def service_types(self) -> Sequence[str]:
        return list(self._by_type)
