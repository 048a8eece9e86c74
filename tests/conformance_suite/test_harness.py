"""The conformance harness reads the runner's verdict right, and frames messages right."""

from __future__ import annotations

import io

import pytest

from conformance.run import CONFIGURATIONS, failures, parse, patterns, runner_args
from conformance.wire import read_frame

PASSING = """Computed 96 config case permutations.
Total cases: 690
688 passed, 0 failed
(Another 2 failed as expected due to being known failures/flakes.)
"""

FAILING = """FAILED: Basic/HTTPVersion:1/unary/success:
\tactual error {code: 14 (unavailable)} does not match expected code 13 (internal)
Traceback (most recent call last):
  a server log line
Total cases: 10
8 passed, 1 failed
Another 1 could not be run due to client timing out or exiting prematurely.
"""


def test_a_clean_summary_is_ok() -> None:
    result = parse("x", 0, PASSING)
    assert (result.total, result.passed, result.failed, result.expected) == (690, 688, 0, 2)
    assert result.ok


@pytest.mark.parametrize(
    ("exit_code", "output", "timed_out"),
    [
        (1, FAILING, False),  # a failure and a case that could not run
        (1, PASSING.replace("0 failed", "1 failed"), False),
        (124, "", True),  # the timeout command ended the run
        (0, "", False),  # no summary at all: nothing ran
    ],
)
def test_failures_timeouts_and_empty_runs_are_not_ok(
    exit_code: int, output: str, timed_out: bool
) -> None:
    assert not parse("x", exit_code, output, timed_out=timed_out).ok


def test_failures_keeps_the_verdict_and_drops_server_logs() -> None:
    assert failures(FAILING).splitlines() == FAILING.splitlines()[:2]


def test_every_configuration_has_its_features_file_and_loads_its_lists() -> None:
    for config in CONFIGURATIONS:
        args = runner_args(config, ["Basic/**"])
        assert config.config_file.exists(), config.config_file
        assert args[args.index("--mode") + 1] == config.mode
        assert args[-2:] == ["--run", "Basic/**"]
        assert config.expected("failing").exists(), "every configuration lists its known failures"
        for kind in ("failing", "flaky", "skip"):
            listed = f"@{config.expected(kind)}" in args
            assert listed == bool(patterns(config.expected(kind))), (config.name, kind)


def test_frames_are_length_prefixed_and_a_truncated_frame_is_an_error() -> None:
    assert read_frame(io.BytesIO(b"\x00\x00\x00\x03abc")) == b"abc"
    assert read_frame(io.BytesIO(b"")) is None
    with pytest.raises(EOFError):
        read_frame(io.BytesIO(b"\x00\x00\x00\x05ab"))
