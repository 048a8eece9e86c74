"""Registry logic: authorization, validation, discovery (semver, health, strategies), watch."""

from __future__ import annotations

import asyncio
import random

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from plugin_di.gen.connectplugin.v1 import registry_pb2 as pb
from plugin_di.host.registry import ServiceRegistry
from plugin_di.host.selection import Selector, Strategy
from plugin_di.host.store import Declaration, PluginRecord
from plugin_di.host.tracker import DEGRADED, HEALTHY, UNHEALTHY


def _registry(*plugins: tuple[str, tuple[str, ...] | None], **kw: bool) -> ServiceRegistry:
    """Plugins admitted to provide the given types (None: admitted with no grant recorded)."""
    registry = ServiceRegistry(selector=Selector(random.Random(7)), **kw)
    for runtime_id, provides in plugins:
        declared = tuple(Declaration(t) for t in provides or ())
        registry.store.put_plugin(PluginRecord(runtime_id, runtime_id, provides=declared))
        if provides is not None:
            registry.set_allowed_services(runtime_id, provides)
    return registry


def _code(fn: object, *args: object) -> Code:
    with pytest.raises(ConnectError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.code


def test_register_discover_unregister() -> None:
    registry = _registry(("logger-1", ("logger",)))
    reg = registry.register("logger-1", "logger", "1.0.0", "/capability.logger.v1.Logger/")
    assert reg.registration_id.startswith("reg-")
    assert len(reg.registration_id) == 20
    found, single = registry.discover("logger")
    assert found == reg
    assert single
    assert registry.endpoint(found).endpoint_url == "/services/logger/logger-1"
    registry.unregister("logger-1", reg.registration_id)
    assert _code(registry.discover, "logger") is Code.NOT_FOUND


def test_a_type_outside_the_grant_is_permission_denied() -> None:
    registry = _registry(("cache-1", ("cache",)))
    with pytest.raises(ConnectError) as info:
        registry.register("cache-1", "secrets", "1.0.0", "/s/")
    assert info.value.code is Code.PERMISSION_DENIED
    assert "not authorized" in info.value.message
    assert "its admission grants: cache" in info.value.message


def test_a_declaration_grants_nothing() -> None:
    registry = ServiceRegistry()
    registry.store.put_plugin(PluginRecord("kv-1", "kv", provides=(Declaration("kv"),)))
    assert _code(registry.register, "kv-1", "kv", "1.0.0", "/kv/") is Code.PERMISSION_DENIED


def test_allow_lists() -> None:
    registry = _registry(("p-1", None), open_registration=True)
    # no grant recorded, open registration: anything goes
    for t in ("cache", "logger", "secrets", "auth"):
        registry.register("p-1", t, "1.0.0", "/x/")
    registry.set_allowed_services("p-1", ["cache", "logger", "metrics"])
    for t in ("cache", "logger", "metrics"):
        registry.register("p-1", t, "1.0.0", "/x/")
    assert _code(registry.register, "p-1", "secrets", "1.0.0", "/x/") is Code.PERMISSION_DENIED
    registry.set_allowed_services("p-1", [])
    assert _code(registry.register, "p-1", "cache", "1.0.0", "/x/") is Code.PERMISSION_DENIED


def test_closed_by_default_without_a_grant() -> None:
    registry = _registry(("p-1", None))
    assert _code(registry.register, "p-1", "cache", "1.0.0", "/x/") is Code.PERMISSION_DENIED
    assert _code(registry.register, "stranger", "cache", "1.0.0", "/x/") is Code.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", "1.0.0", "/x/", {}), "service_type"),
        (("a/b", "1.0.0", "/x/", {}), "service_type"),
        (("cache", "1.0", "/x/", {}), "version"),
        (("cache", "1.0.0", "x/", {}), "endpoint_path"),
        (("cache", "1.0.0", "/x/", {"1bad": "v"}), "metadata"),
    ],
)
def test_invalid_inputs_name_the_field(args: tuple[object, ...], field: str) -> None:
    registry = _registry(("p-1", ("cache",)))
    with pytest.raises(ConnectError) as info:
        registry.register("p-1", *args)  # type: ignore[arg-type]
    assert info.value.code is Code.INVALID_ARGUMENT
    assert info.value.message.startswith(field)


def test_only_owner_unregisters() -> None:
    registry = _registry(("a-1", ("cache",)), ("b-1", ("cache",)))
    reg = registry.register("a-1", "cache", "1.0.0", "/c/")
    assert _code(registry.unregister, "b-1", reg.registration_id) is Code.PERMISSION_DENIED
    assert _code(registry.unregister, "a-1", "reg-nope") is Code.NOT_FOUND


def test_semver_filtering_not_lexicographic() -> None:
    registry = _registry(("old-1", ("kv",)), ("new-1", ("kv",)))
    registry.register("old-1", "kv", "9.0.0", "/kv/")
    registry.register("new-1", "kv", "10.0.0", "/kv/")
    found, single = registry.discover("kv", "9.5.0")
    assert found.runtime_id == "new-1"
    assert not single
    assert registry.discover("kv", "10.0.0")[0].runtime_id == "new-1"
    assert registry.discover("kv", "10.0.0-rc.1")[0].runtime_id == "new-1"
    with pytest.raises(ConnectError) as info:
        registry.discover("kv", "11.0.0")
    assert info.value.code is Code.NOT_FOUND
    assert "min version: 11.0.0" in info.value.message


def test_health_filtering() -> None:
    registry = _registry(("a-1", ("logger",)), ("b-1", ("logger",)))
    registry.register("a-1", "logger", "1.0.0", "/l/")
    registry.register("b-1", "logger", "1.0.0", "/l/")
    registry.tracker.report("a-1", UNHEALTHY, "db down")
    assert registry.discover("logger")[0].runtime_id == "b-1"
    registry.tracker.report("b-1", DEGRADED, "slow")
    assert registry.discover("logger")[0].runtime_id == "b-1"
    registry.tracker.report("b-1", UNHEALTHY)
    with pytest.raises(ConnectError) as info:
        registry.discover("logger")
    assert "all unhealthy" in info.value.message


def test_strategies() -> None:
    ids = ("a-1", "b-1", "c-1")
    registry = _registry(*((i, ("logger",)) for i in ids))
    for i in ids:
        registry.register(i, "logger", "1.0.0", "/l/", {"weight": "0" if i == "a-1" else "1"})
    assert {registry.discover("logger")[0].runtime_id for _ in range(5)} == {"a-1"}
    registry.selector.set_strategy("logger", Strategy.ROUND_ROBIN)
    assert [registry.discover("logger")[0].runtime_id for _ in range(4)] == [
        "a-1",
        "b-1",
        "c-1",
        "a-1",
    ]
    registry.selector.set_strategy("logger", Strategy.RANDOM)
    assert {registry.discover("logger")[0].runtime_id for _ in range(60)} == set(ids)
    registry.selector.set_strategy("logger", Strategy.WEIGHTED)
    picked = {registry.discover("logger")[0].runtime_id for _ in range(60)}
    assert picked == {"b-1", "c-1"}  # weight 0 never chosen


async def test_watch_initial_state_then_every_change() -> None:
    registry = _registry(("logger-1", ("logger",)))
    watcher = registry.watch("logger")

    async def next_state() -> pb.WatchServiceEvent:
        return await asyncio.wait_for(watcher.__anext__(), 1)

    assert (await next_state()).state == pb.SERVICE_STATE_UNAVAILABLE
    reg = registry.register("logger-1", "logger", "1.0.0", "/l/")
    event = await next_state()
    assert event.state == pb.SERVICE_STATE_AVAILABLE
    assert event.endpoint.endpoint_url == "/services/logger/logger-1"
    registry.tracker.report("logger-1", DEGRADED, "slow")
    assert (await next_state()).state == pb.SERVICE_STATE_DEGRADED
    registry.tracker.report("logger-1", UNHEALTHY)
    assert (await next_state()).state == pb.SERVICE_STATE_UNAVAILABLE
    registry.tracker.report("logger-1", HEALTHY)
    assert (await next_state()).state == pb.SERVICE_STATE_AVAILABLE
    registry.unregister("logger-1", reg.registration_id)
    assert (await next_state()).state == pb.SERVICE_STATE_UNAVAILABLE
    registry.register("logger-1", "logger", "1.0.0", "/l/")
    assert (await next_state()).state == pb.SERVICE_STATE_AVAILABLE
    registry.unregister_plugin("logger-1")
    assert (await next_state()).state == pb.SERVICE_STATE_UNAVAILABLE
    watcher.close()
    assert registry.watcher_count("logger") == 0


async def test_slow_watcher_is_ended_not_silently_dropped() -> None:
    registry = _registry(("p-1", ("logger",)))
    watcher = registry.watch("logger")
    for _ in range(1100):
        registry.register("p-1", "logger", "1.0.0", "/l/")
    with pytest.raises(ConnectError) as info:
        await asyncio.wait_for(watcher.__anext__(), 1)
    assert info.value.code is Code.RESOURCE_EXHAUSTED
