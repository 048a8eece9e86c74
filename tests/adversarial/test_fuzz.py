"""Hypothesis fuzzing of every host method, the router and a served plugin, in every framing,
on every server kind: no crash, no exception text, and the surface still serves after.

``PLUGIN_DI_FUZZ_EXAMPLES`` is the number of inputs per surface (spread over the framings;
default 180, a few seconds per surface). ``make fuzz`` runs 100,000 per surface and writes
the figures (inputs, answers by code, crashes, leaks) to ``PLUGIN_DI_FUZZ_REPORT``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from examples.kv.plugin import make_plugin
from plugin_di.host.server import Host
from plugin_di.plugin.server import PluginServer

from .fuzz import FRAMINGS, Figures, Fuzzer, FuzzInput, FuzzTarget, Portal
from .identities import Creds, join, register_kv
from .servers import SERVER_KINDS, Method, methods_of, serve_host, serve_plugin

EXAMPLES = int(os.environ.get("PLUGIN_DI_FUZZ_EXAMPLES", "180"))
REPORT = os.environ.get("PLUGIN_DI_FUZZ_REPORT", "")
LIMIT = 256 * 1024  # the fuzzed servers' message limit: oversized inputs stay cheap
KV_METHODS = ("Get", "Put", "Delete", "List", "Watch")
# A fuzzed Shutdown would stop the plugin under test: it is tested on its own elsewhere.
NOT_FUZZED = frozenset({"/connectplugin.v1.PluginControl/Shutdown"})

FIGURES: dict[str, Figures] = {}


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    found = Portal()
    try:
        yield found
    finally:
        found.close()


def _host_target(portal: Portal, kind: str) -> Iterator[FuzzTarget]:
    with (
        portal.entered(serve_plugin("hypercorn")) as (_, kv),
        portal.entered(serve_host(kind, rate_limit=None, max_message_bytes=LIMIT)) as (
            _host,
            surface,
        ),
    ):
        provider = portal.run(join(surface, "kv", provides_kv=True))
        portal.run(register_kv(surface, provider, kv.url))
        # Host RPCs carry an identity that may register nothing (a fuzzed registration must
        # never point the router at an address off this machine); routed calls a caller's.
        fuzzer_id = portal.run(join(surface, "fuzzer"))
        caller = portal.run(join(surface, "caller"))
        routed = [
            Method(
                f"/services/kv/{provider.runtime_id}/kv.v1.KVService/{name}", False, name == "Watch"
            )
            for name in KV_METHODS
        ]
        methods = [*methods_of(Host().app.service_names), *routed]

        def headers_for(method: Method, caller: Creds = caller) -> list[tuple[bytes, bytes]]:
            return (caller if method in routed else fuzzer_id).headers()

        yield FuzzTarget(surface, methods, headers_for, LIMIT)


def _plugin_target(portal: Portal, kind: str) -> Iterator[FuzzTarget]:
    with portal.entered(serve_plugin(kind, max_message_bytes=LIMIT)) as (_, surface):
        served = PluginServer(make_plugin()).app.service_names
        methods = [m for m in methods_of(served) if m.path not in NOT_FUZZED]
        yield FuzzTarget(surface, methods, max_message_bytes=LIMIT)


@pytest.fixture(
    scope="module",
    params=[f"{role}/{kind}" for role in ("host", "plugin") for kind in SERVER_KINDS],
)
def target(request: pytest.FixtureRequest, portal: Portal) -> Iterator[FuzzTarget]:
    role, kind = str(request.param).split("/")
    make = _host_target if role == "host" else _plugin_target
    yield from make(portal, kind)


@pytest.mark.timeout(0 if EXAMPLES > 1000 else 300)
@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_fuzz(target: FuzzTarget, portal: Portal, framing: str) -> None:
    name = target.surface.name
    fuzzer = Fuzzer(target, portal)
    fuzzer.figures = FIGURES.setdefault(name, Figures())
    crashes_before, leaks_before = len(fuzzer.figures.crashes), len(fuzzer.figures.leaks)

    @settings(
        max_examples=max(1, EXAMPLES // len(FRAMINGS)),
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(FRAMINGS[framing](target))
    def one(inp: FuzzInput) -> None:
        fuzzer.send(inp)

    one()
    fuzzer.check_valid_call()
    crashes = fuzzer.figures.crashes[crashes_before:]
    found = fuzzer.figures.leaks[leaks_before:]
    assert not crashes, f"{len(crashes)} crashes, the first:\n" + "\n".join(crashes[:10])
    assert not found, f"{len(found)} leaks, the first:\n" + "\n".join(found[:10])


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if REPORT and FIGURES:
        write_report(Path(REPORT))


def write_report(path: Path) -> None:
    """The figures as JSON beside a Markdown table (``path`` names the Markdown file)."""
    data = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "inputs_per_surface_requested": EXAMPLES,
        "framings": list(FRAMINGS),
        "surfaces": {name: figures.as_dict() for name, figures in sorted(FIGURES.items())},
    }
    path.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        f"Fuzz run of {data['date']} ({data['machine']}): `make fuzz`, "
        f"{EXAMPLES:,} inputs requested per surface over {len(FRAMINGS)} framings "
        f"({', '.join(FRAMINGS)}).",
        "",
        "| surface | inputs | crashes | leaks | valid calls after batches | answers by code |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, figures in data["surfaces"].items():
        codes = ", ".join(f"{code} {count:,}" for code, count in figures["answers_by_code"].items())
        lines.append(
            f"| {name} | {figures['inputs']:,} | {figures['crashes']} | {figures['leaks']} | "
            f"{figures['valid_calls_after_batches']:,} | {codes} |"
        )
    path.write_text("\n".join(lines) + "\n")
