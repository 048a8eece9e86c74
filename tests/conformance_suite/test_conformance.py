"""A bounded subset of the Connect conformance suite against every plugin-di configuration.

The whole suite runs in ``make conformance`` (``python -m conformance.run``); here a few suites
per configuration, a few hundred cases, run in server mode against each way plugin-di serves
and in client mode against each of its clients. Known failures, flaky cases and cases that hang
and cases not run are read from ``conformance/expected/`` as in the full run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.protos import RUNNER, SUITE, ensure_generated
from conformance.run import CONFIGURATIONS, Configuration, failures, run_configuration

pytestmark = pytest.mark.skipif(
    not RUNNER.exists(),
    reason=f"the Connect conformance runner is not there: {RUNNER} "
    f"(the suite lives in {SUITE}, ../shared/conformance beside the project)",
)

SUBSETS: dict[str, tuple[str, ...]] = {
    # every stream type over h2c in the three protocols; HTTP/1.1 over TLS; mTLS; Connect over
    # HTTP/1.1 (the short path); errors; full-duplex streams the server ends first
    "server": (
        "Basic/HTTPVersion:2/**/TLS:false/**",
        "Basic/HTTPVersion:1/Protocol:PROTOCOL_CONNECT/**/TLS:true/**",
        "Basic/HTTPVersion:1/Protocol:PROTOCOL_CONNECT/Codec:CODEC_PROTO/**/TLS:false/**",
        "TLS Client Certs/HTTPVersion:2/Protocol:PROTOCOL_GRPC/**",
        "Connect with GET/**",
        "Errors/**/Codec:CODEC_PROTO/Compression:COMPRESSION_IDENTITY/**",
    ),
    "server-asyncio": (
        "Basic/HTTPVersion:1/**/Codec:CODEC_PROTO/**/TLS:false/**",
        "Basic/HTTPVersion:2/Protocol:PROTOCOL_GRPC/**/TLS:true/**",
    ),
    "client-h1-lean": ("Basic/**", "Connect Unexpected Responses/**", "Client Cancellation/**"),
    # h2c in the three protocols; HTTP/1.1 cleartext and over TLS; mTLS; cancellations
    "client-pyqwest": (
        "Basic/HTTPVersion:2/**/TLS:false/**",
        "Basic/HTTPVersion:1/Protocol:PROTOCOL_CONNECT/Codec:CODEC_PROTO/**",
        "TLS Client Certs/HTTPVersion:2/**",
        "Client Cancellation/HTTPVersion:2/Protocol:PROTOCOL_GRPC/**/TLS:false/**",
    ),
    "client-h1-lean-blocking": ("Basic/**/Codec:CODEC_PROTO/**",),
    "client-pyqwest-blocking": ("Basic/HTTPVersion:2/Protocol:PROTOCOL_GRPC/**",),
}


@pytest.fixture(scope="module", autouse=True)
def generated() -> None:
    """The suite's protos, generated once before the programs start (in parallel)."""
    ensure_generated()


@pytest.mark.timeout(150)
@pytest.mark.parametrize("config", CONFIGURATIONS, ids=lambda c: c.name)
def test_conformance_subset(config: Configuration, tmp_path: Path) -> None:
    result = run_configuration(config, run=SUBSETS[config.name], timeout=120, logs=tmp_path)
    assert result.total > 0, result.output[-3000:]
    assert result.ok, failures(result.output) or result.output[-3000:]
    assert result.passed + result.expected == result.total
