"""Run the Connect conformance suite against each plugin-di configuration and sum it up.

``python -m conformance.run`` (``make conformance``) runs every configuration in
`CONFIGURATIONS`: the runner in server mode against each way plugin-di serves, in client mode
against each of its clients. Each run is bounded by ``timeout``. Per configuration,
``conformance/expected/`` may hold three lists of case patterns, each entry under a comment
that gives its reason:

- ``<name>.failing.txt``: known failures (``--known-failing``: they must fail);
- ``<name>.flaky.txt``: known flaky cases (``--known-flaky``: they may fail);
- ``<name>.skip.txt``: cases not run (``--skip``): those that hang the run (the runner has no
  per-case deadline in server mode, so one of them stalls the whole configuration) and those
  the API under test cannot express (the blocking client cannot cancel a call).

The exit status is non-zero when any case fails unexpectedly, could not run, or a run timed out.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from conformance.protos import ROOT, RUNNER, SUITE, ensure_generated

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected"
LOGS = ROOT / "build" / "conformance-logs"
DEFAULT_TIMEOUT_SECONDS = 900
PARALLEL = 2  # calls in flight and servers at once: a 2-core machine


@dataclass(frozen=True)
class Configuration:
    """One thing under test: a runner mode, its features file and the program to run."""

    name: str
    mode: str  # "server" or "client"
    program: tuple[str, ...]  # ``python -m`` arguments
    features: str = ""  # the features file's name when it is not ``name``

    @property
    def config_file(self) -> Path:
        return HERE / "configs" / f"{self.features or self.name}.yaml"

    def expected(self, kind: str) -> Path:
        """The pattern file of ``kind`` (failing, flaky or skip) for this configuration."""
        return EXPECTED / f"{self.name}.{kind}.txt"


_CLIENT = "conformance.client"
_CALLS = f"--parallel={PARALLEL}"
CONFIGURATIONS = (
    Configuration("server", "server", ("conformance.server", "--loop", "uvloop")),
    Configuration(
        "server-asyncio", "server", ("conformance.server", "--loop", "asyncio"), features="server"
    ),
    Configuration("client-h1-lean", "client", (_CLIENT, "--h1=lean", _CALLS)),
    Configuration("client-pyqwest", "client", (_CLIENT, "--h1=pyqwest", _CALLS)),
    Configuration(
        "client-h1-lean-blocking",
        "client",
        (_CLIENT, "--h1=lean", "--api=blocking", _CALLS),
        features="client-h1-lean",
    ),
    Configuration(
        "client-pyqwest-blocking",
        "client",
        (_CLIENT, "--h1=pyqwest", "--api=blocking", _CALLS),
        features="client-pyqwest",
    ),
)
_BY_NAME = {c.name: c for c in CONFIGURATIONS}
_EXPECTATION_FLAGS = (("failing", "--known-failing"), ("flaky", "--known-flaky"))


@dataclass(frozen=True)
class Result:
    """What one run of the runner reported."""

    name: str
    exit_code: int
    total: int = 0
    passed: int = 0
    failed: int = 0
    expected: int = 0
    """cases that failed as the known-failing and flaky lists allow"""
    not_run: int = 0
    skipped: int = 0
    timed_out: bool = False
    output: str = ""

    @property
    def ok(self) -> bool:
        """Every case passed or failed as expected, and nothing was left unrun."""
        clean = self.failed == 0 and self.not_run == 0 and not self.timed_out
        return clean and self.exit_code == 0 and self.total > 0


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else 0


def parse(name: str, exit_code: int, output: str, *, timed_out: bool = False) -> Result:
    """Read the runner's summary lines (``Total cases: N``, ``P passed, F failed``...)."""
    return Result(
        name=name,
        exit_code=exit_code,
        total=_number(r"Total cases: (\d+)", output),
        passed=_number(r"(\d+) passed, \d+ failed", output),
        failed=_number(r"\d+ passed, (\d+) failed", output),
        expected=_number(r"\((?:Another )?(\d+) failed as expected", output),
        not_run=_number(r"Another (\d+) could not be run", output),
        timed_out=timed_out,
        output=output,
    )


def patterns(path: Path) -> list[str]:
    """The case patterns of a list file (comments and blank lines dropped); [] if absent."""
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def runner_args(
    config: Configuration, run: Sequence[str] = (), *, each_case: bool = False
) -> list[str]:
    """The runner's flags for ``config``: features, expectations, load, selection.

    ``each_case`` logs every case sent and answered (``--vv``; a case sent and never answered
    is the one that hangs) and the HTTP trace of each failure (``--trace``).
    """
    args = ["--mode", config.mode, "--conf", str(config.config_file)]
    args += ["--vv", "--trace"] if each_case else ["-v"]
    args += ["--max-servers", str(PARALLEL)]
    if config.mode == "server":  # in client mode the client sets its own pace (--parallel)
        args += ["--parallel", str(PARALLEL)]
    for kind, flag in _EXPECTATION_FLAGS:
        if patterns(config.expected(kind)):
            args += [flag, f"@{config.expected(kind)}"]
    if patterns(config.expected("skip")):
        args += ["--skip", f"@{config.expected('skip')}"]
    for pattern in run:
        args += ["--run", pattern]
    return args


def _environ() -> dict[str, str]:
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    return environ


def count_skipped(config: Configuration, run: Sequence[str] = ()) -> int:
    """How many cases the skip list removes, without running them.

    The runner is given the list as ``--run`` patterns and a command that exits at once: it
    prints how many cases it selected, then fails each of them immediately.
    """
    skipped = patterns(config.expected("skip"))
    if not skipped or run:  # a --run selection: the overlap is not worth a second runner
        return 0
    args = ["--mode", config.mode, "--conf", str(config.config_file), "-v"]
    for pattern in skipped:
        args += ["--run", pattern]
    false = shutil.which("false") or "false"
    done = subprocess.run(
        [str(RUNNER), *args, "--", false], capture_output=True, text=True, timeout=120
    )
    return _number(r"Filtered tests to (\d+) test case", done.stdout + done.stderr)


def run_configuration(
    config: Configuration,
    *,
    run: Sequence[str] = (),
    timeout: int = DEFAULT_TIMEOUT_SECONDS,
    each_case: bool = False,
    logs: Path = LOGS,
) -> Result:
    """Run the suite (or the ``run`` patterns of it) against ``config``.

    The runner's output goes to ``<logs>/<name>.log`` as it runs.
    """
    command = [
        "timeout",
        "--kill-after=10",
        str(timeout),
        str(RUNNER),
        *runner_args(config, run, each_case=each_case),
        "--",
        sys.executable,
        "-m",
        *config.program,
    ]
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"{config.name}.log"
    with log_file.open("w") as log:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=_environ(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout + 30,
        )
    output = log_file.read_text()
    result = parse(config.name, done.returncode, output, timed_out=done.returncode == 124)
    return replace(result, skipped=count_skipped(config, run))


def failures(output: str) -> str:
    """The runner's ``FAILED:`` blocks (the case and why), without the servers' logs."""
    lines: list[str] = []
    keep = False
    for line in output.splitlines():
        if line.startswith("FAILED: "):
            keep = True
        elif not line.startswith("\t"):
            keep = False
        if keep:
            lines.append(line)
    return "\n".join(lines)


def summary(results: Sequence[Result]) -> str:
    """A table: one row per configuration."""
    head = f"{'configuration':<24} {'cases':>6} {'passed':>7} {'failed':>7} {'expected':>8}"
    head += f" {'not run':>8} {'skipped':>8}  status"
    rows = [head, "-" * len(head)]
    for r in results:
        status = "ok" if r.ok else ("TIMED OUT" if r.timed_out else "FAILED")
        rows.append(
            f"{r.name:<24} {r.total:>6} {r.passed:>7} {r.failed:>7} {r.expected:>8}"
            f" {r.not_run:>8} {r.skipped:>8}  {status}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(_BY_NAME), default=[])
    parser.add_argument("--run", action="append", default=[], help="a case pattern to run")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_SECONDS)
    parser.add_argument("--each-case", action="store_true", help="log every case (--vv)")
    args = parser.parse_args(argv)
    if not RUNNER.exists():
        print(f"the conformance runner is missing: {RUNNER} (see {SUITE})", file=sys.stderr)
        return 2
    ensure_generated()
    results: list[Result] = []
    for config in [_BY_NAME[n] for n in args.only] or CONFIGURATIONS:
        print(f"== {config.name}: running (at most {args.timeout} s)", flush=True)
        result = run_configuration(
            config, run=args.run, timeout=args.timeout, each_case=args.each_case
        )
        if not result.ok:
            print(failures(result.output) or result.output[-4000:], flush=True)
            print(f"(the whole output: {LOGS / (config.name + '.log')})", flush=True)
        results.append(result)
    print(summary(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
