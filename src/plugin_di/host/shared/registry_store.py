"""The registry's store on the shared state: plugins, grants to register, registrations.

Reads are the replica's dicts (and a per-type index kept beside them), as fast as
`InMemoryStore`. A registration is written only while its plugin is still in the store
(a compare-and-set in the same atomic step), so a registration can never outlive the
lease of the plugin that made it. Every entry is owned by its plugin's runtime id, and
goes when that plugin's lease ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plugin_di.host.shared import codecs
from plugin_di.host.shared.state import SharedState
from plugin_di.host.store import PluginRecord, Registration


def _by_key(key: str, value: object) -> str:
    return key


def _by_runtime_id(key: str, registration: Registration) -> str:
    return registration.runtime_id


class SharedRegistryStore:
    """A `RegistryStore` replicated through a `SharedState` (satisfies `ObservableStore`)."""

    def __init__(self, state: SharedState) -> None:
        self.plugins_map = state.map(
            "plugins", codecs.encode_record, codecs.decode_record, owner=_by_key
        )
        self._allowed = state.map(
            "allowed", codecs.encode_types, codecs.decode_types, owner=_by_key
        )
        self._registrations = state.map(
            "regs", codecs.encode_registration, codecs.decode_registration, owner=_by_runtime_id
        )
        self._by_type: dict[str, dict[str, Registration]] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._registrations.on_change(self._changed)

    def subscribe(self, on_change: Callable[[str], None]) -> None:
        """Call ``on_change(service_type)`` when another host (or a lease's end) changed the
        registrations of that type."""
        self._listeners.append(on_change)

    def _index(self, registration: Registration) -> None:
        self._by_type.setdefault(registration.service_type, {})[registration.registration_id] = (
            registration
        )

    def _unindex(self, registration: Registration) -> None:
        by_type = self._by_type.get(registration.service_type)
        if by_type is not None:
            by_type.pop(registration.registration_id, None)
            if not by_type:
                del self._by_type[registration.service_type]

    def _changed(self, key: str, old: Registration | None, new: Registration | None) -> None:
        if old is not None:
            self._unindex(old)
        if new is not None:
            self._index(new)
        for service_type in {r.service_type for r in (old, new) if r is not None}:
            for listener in list(self._listeners):
                listener(service_type)

    # -- plugins -------------------------------------------------------------------------
    def put_plugin(self, record: PluginRecord) -> None:
        self.plugins_map.put(record.runtime_id, record)

    def get_plugin(self, runtime_id: str) -> PluginRecord | None:
        return self.plugins_map.get(runtime_id)

    def remove_plugin(self, runtime_id: str) -> PluginRecord | None:
        self._allowed.delete(runtime_id)
        return self.plugins_map.delete(runtime_id)

    def plugins(self) -> Sequence[PluginRecord]:
        return list(self.plugins_map.values())

    # -- grants to register --------------------------------------------------------------
    def set_allowed(self, runtime_id: str, types: frozenset[str] | None) -> None:
        if types is None:
            self._allowed.delete(runtime_id)
        else:
            self._allowed.put(runtime_id, types)

    def allowed(self, runtime_id: str) -> frozenset[str] | None:
        return self._allowed.get(runtime_id)

    # -- registrations -------------------------------------------------------------------
    def add_registration(self, registration: Registration) -> None:
        self._registrations.put(
            registration.registration_id, registration, guard=("plugins", registration.runtime_id)
        )
        self._index(registration)

    def remove_registration(self, registration_id: str) -> Registration | None:
        registration = self._registrations.delete(registration_id)
        if registration is not None:
            self._unindex(registration)
        return registration

    def get_registration(self, registration_id: str) -> Registration | None:
        return self._registrations.get(registration_id)

    def registrations(self, service_type: str) -> Sequence[Registration]:
        return list(self._by_type.get(service_type, {}).values())

    def registrations_of(self, runtime_id: str) -> Sequence[Registration]:
        return [r for r in self._registrations.values() if r.runtime_id == runtime_id]

    def service_types(self) -> Sequence[str]:
        return list(self._by_type)
