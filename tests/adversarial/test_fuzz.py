"""Hypothesis fuzzing of every host method, the router and a served plugin, in every framing,
on every server kind: no crash, no exception text, and the surface still serves after.

The servers run in child processes, so that a crash (a segfault, say) is counted rather
than ending the run. ``PLUGIN_DI_FUZZ_EXAMPLES`` is the number of inputs per surface, spread
over the framings (default 180: a few seconds per surface). ``make fuzz`` runs 100,000 per
surface and writes the figures (inputs, answers by code, crashes, leaks) to
``PLUGIN_DI_FUZZ_REPORT`` (Markdown, and JSON beside it).
"""

from __future__ import annotations

import contextlib
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

from .support.children import Child, host_child, plugin_child
from .support.fuzz import FRAMINGS, Figures, Fuzzer, FuzzInput, FuzzTarget, Portal, SurfaceDown
from .support.identities import HANDSHAKE, Creds, join, register_kv
from .support.servers import SERVER_KINDS, Method, methods_of

EXAMPLES = int(os.environ.get("PLUGIN_DI_FUZZ_EXAMPLES", "180"))
REPORT = os.environ.get("PLUGIN_DI_FUZZ_REPORT", "")
LIMIT = 256 * 1024  # the fuzzed servers' message limit: oversized inputs stay cheap
KV_METHODS = ("Get", "Put", "Delete", "List", "Watch")
# A fuzzed Shutdown would stop the plugin under test: it is tested on its own elsewhere.
NOT_FUZZED = frozenset({"/connectplugin.v1.PluginControl/Shutdown"})
ROUNDS = 50  # hypothesis may run out of new inputs in a small space: it starts again
WINDOW = 8  # inputs in flight while hypothesis draws the next ones

FIGURES: dict[str, Figures] = {}


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    found = Portal()
    try:
        yield found
    finally:
        found.close()


def _host_target(portal: Portal, kind: str) -> Iterator[tuple[FuzzTarget, list[Child]]]:
    with plugin_child("tcp", LIMIT) as kv, host_child(kind, LIMIT) as host:
        surface = host.surface
        provider = portal.run(join(surface, "kv", provides_kv=True))
        portal.run(register_kv(surface, provider, kv.surface.url))
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
            if method.path == HANDSHAKE.path:
                return []  # a bearer token there is a join token: the allow-list admits none
            return (caller if method in routed else fuzzer_id).headers()

        yield FuzzTarget(surface, methods, headers_for, LIMIT), [host, kv]


def _plugin_target(portal: Portal, kind: str) -> Iterator[tuple[FuzzTarget, list[Child]]]:
    with plugin_child(kind, LIMIT) as kv:
        served = PluginServer(make_plugin()).app.service_names
        methods = [m for m in methods_of(served) if m.path not in NOT_FUZZED]
        yield FuzzTarget(kv.surface, methods, max_message_bytes=LIMIT), [kv]


@pytest.fixture(
    scope="module",
    params=[f"{role}/{kind}" for role in ("host", "plugin") for kind in SERVER_KINDS],
)
def target(
    request: pytest.FixtureRequest, portal: Portal
) -> Iterator[tuple[FuzzTarget, list[Child]]]:
    role, kind = str(request.param).split("/")
    make = _host_target if role == "host" else _plugin_target
    yield from make(portal, kind)


@pytest.mark.timeout(0 if EXAMPLES > 1000 else 300)
@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_fuzz(target: tuple[FuzzTarget, list[Child]], portal: Portal, framing: str) -> None:
    surface_target, children = target
    fuzzer = Fuzzer(surface_target, portal, window=WINDOW)
    fuzzer.figures = figures = FIGURES.setdefault(surface_target.surface.name, Figures())
    crashes_before, leaks_before = len(figures.crashes), len(figures.leaks)
    wanted = max(1, -(-EXAMPLES // len(FRAMINGS)))  # at least EXAMPLES over all framings
    sent = 0

    def one(inp: FuzzInput) -> None:
        nonlocal sent
        fuzzer.send(inp)
        sent += 1

    with contextlib.suppress(SurfaceDown):  # counted below, with how the server ended
        for _ in range(ROUNDS):
            remaining = wanted - sent
            if remaining <= 0 or any(not child.alive() for child in children):
                break
            run = settings(
                max_examples=remaining,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(given(FRAMINGS[framing](surface_target))(one))
            run()
        fuzzer.settle()
    for child in children:
        if not child.alive():
            figures.crashes.append(f"{child.surface.name} died: {child.died()}")
    if all(child.alive() for child in children):
        fuzzer.check_valid_call()
    if REPORT:  # after every framing: a long run stopped early keeps what it measured
        write_report(Path(REPORT))
    crashes = figures.crashes[crashes_before:]
    found = figures.leaks[leaks_before:]
    logs = "\n".join(child.log_tail() for child in children) if crashes else ""
    assert not crashes, f"{len(crashes)} crashes, the first:\n" + "\n".join(crashes[:10]) + logs
    assert not found, f"{len(found)} leaks, the first:\n" + "\n".join(found[:10])


FIGURES_START = "<!-- fuzz figures: written by make fuzz -->"
FIGURES_END = "<!-- end of fuzz figures -->"


def write_report(path: Path) -> None:
    """The figures as Markdown at ``path`` (between the `FIGURES_START` and `FIGURES_END`
    markers when the file has them, as docs/security.md does; else the whole file) and as
    JSON in ``fuzz-figures.json`` beside it."""
    json_path = path.parent / "fuzz-figures.json"
    surfaces = {name: figures.as_dict() for name, figures in FIGURES.items()}
    if json_path.exists():  # runs of some surfaces (pytest -k) add up to one report
        earlier = json.loads(json_path.read_text())
        if earlier.get("inputs_per_surface_requested") == EXAMPLES:
            surfaces = {**earlier["surfaces"], **surfaces}
    data = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "inputs_per_surface_requested": EXAMPLES,
        "framings": list(FRAMINGS),
        "surfaces": dict(sorted(surfaces.items())),
    }
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        f"Fuzz run of {data['date']} ({data['machine']}): `make fuzz`, "
        f"{EXAMPLES:,} inputs requested per surface over {len(FRAMINGS)} framings "
        f"({', '.join(FRAMINGS)}); servers in child processes.",
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
    table = "\n".join(lines) + "\n"
    text = path.read_text() if path.exists() else ""
    if FIGURES_START in text and FIGURES_END in text:
        before, rest = text.split(FIGURES_START, 1)
        after = rest.split(FIGURES_END, 1)[1]
        table = f"{before}{FIGURES_START}\n{table}{FIGURES_END}{after}"
    path.write_text(table)
