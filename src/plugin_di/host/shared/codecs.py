"""Text forms of the platform's records in the shared store (compact JSON)."""

from __future__ import annotations

import json
from typing import Any

from plugin_di.host.store import Declaration, PluginRecord, Registration, Requirement
from plugin_di.host.tracker import HealthReport

_COMPACT = {"separators": (",", ":")}


def _dump(value: Any) -> str:
    return json.dumps(value, **_COMPACT)  # type: ignore[arg-type]


def encode_record(record: PluginRecord) -> str:
    return _dump(
        {
            "id": record.runtime_id,
            "self": record.self_id,
            "v": record.version,
            "p": [[d.type, d.version, d.path] for d in record.provides],
            "r": [
                [r.type, r.min_version, r.required_for_startup, r.watch_for_changes]
                for r in record.requires
            ],
            "url": record.base_url,
            "md": dict(record.metadata),
        }
    )


def decode_record(text: str) -> PluginRecord:
    raw = json.loads(text)
    return PluginRecord(
        runtime_id=raw["id"],
        self_id=raw["self"],
        version=raw["v"],
        provides=tuple(Declaration(*d) for d in raw["p"]),
        requires=tuple(Requirement(*r) for r in raw["r"]),
        base_url=raw["url"],
        metadata=raw["md"],
    )


def encode_registration(registration: Registration) -> str:
    return _dump(
        [
            registration.registration_id,
            registration.runtime_id,
            registration.service_type,
            registration.version,
            registration.endpoint_path,
            dict(registration.metadata),
            registration.registered_at,
        ]
    )


def decode_registration(text: str) -> Registration:
    rid, runtime_id, service_type, version, path, metadata, at = json.loads(text)
    return Registration(rid, runtime_id, service_type, version, path, metadata, at)


def encode_types(types: frozenset[str]) -> str:
    return _dump(sorted(types))


def decode_types(text: str) -> frozenset[str]:
    return frozenset(json.loads(text))


def encode_health(report: HealthReport) -> str:
    return _dump([report.state, report.reason, list(report.unavailable_dependencies)])


def decode_health(text: str) -> HealthReport:
    state, reason, unavailable = json.loads(text)
    return HealthReport(int(state), reason, tuple(unavailable))
