"""``plugin-di health`` and ``plugin-di call`` against real plugin servers on 127.0.0.1.

The command runs in a worker thread (its client is blocking) while the test's loop serves.
"""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest

from examples.kv.plugin import make_plugin
from plugin_di.cli import main
from plugin_di.plugin.health import HealthState
from plugin_di.rpc.tls import der_to_pem, generate_ephemeral_cert
from tests.cli.support import closed_port, run_cli
from tests.support.inloop import serving


async def test_health_exit_codes_follow_grpc_health_probe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with serving(make_plugin()) as (server, line, _):
        code, out, err = await run_cli(capsys, "health", line.url)
        assert code == 0, err
        assert out == (
            "grpc.health.v1: SERVING\nconnectplugin.health.v1: SERVING\nstatus: SERVING\n"
        )
        address = line.url.removeprefix("http://")  # HOST:PORT works too
        assert (await run_cli(capsys, "health", address, "kv.v1.KVService"))[0] == 0

        code, _, err = await run_cli(capsys, "health", line.url, "no.such.Service")
        assert code == 3
        assert "not_found: unknown service: no.such.Service" in err

        server.health.report(HealthState.UNHEALTHY, "db down")
        code, out, err = await run_cli(capsys, "health", line.url, "kv.v1.KVService")
        assert code == 4
        assert "grpc.health.v1: NOT_SERVING" in out
        assert "service unhealthy (grpc.health.v1 responded with NOT_SERVING)" in err

        server.health.report(HealthState.DEGRADED, "cache cold")  # degraded still serves
        assert (await run_cli(capsys, "health", line.url))[0] == 0
        for protocol in ("grpc", "grpc-web"):
            code, out, err = await run_cli(capsys, "health", line.url, "--protocol", protocol)
            assert (code, out.splitlines()[-1]) == (0, "status: SERVING"), err

    code, _, err = await run_cli(capsys, "health", f"127.0.0.1:{closed_port()}")
    assert code == 2
    assert "failed to connect to http://127.0.0.1:" in err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["ftp://127.0.0.1:1"],
        ["http://"],
        ["unix:relative.sock"],
        ["127.0.0.1:1", "--timeout", "0"],
        ["127.0.0.1:1", "--tls-cert", "c.pem"],
        ["http://127.0.0.1:1", "--tls"],
        ["https://127.0.0.1:1", "--tls-ca", "/nonexistent/ca.pem"],
        ["127.0.0.1:1", "--no-such-flag"],
    ],
)
def test_health_invalid_arguments_exit_1(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["health", *args])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    assert code == 1
    assert capsys.readouterr().err


async def test_health_over_tls_trusts_only_the_given_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = generate_ephemeral_cert("kv-plugin")
    (tmp_path / "cert.pem").write_bytes(pair.cert_pem)
    (tmp_path / "key.pem").write_bytes(pair.key_pem)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pair.cert_pem)
    async with serving(
        make_plugin(), tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem"
    ) as (_, line, _out):
        assert der_to_pem(line.cert_der) == pair.cert_pem
        address = line.url.removeprefix("https://")
        code, out, err = await run_cli(capsys, "health", address, "--tls", "--ca", str(ca))
        assert code == 0, err
        assert out.endswith("status: SERVING\n")
        # the system's roots do not know the self-signed certificate: the connection fails
        code, _, err = await run_cli(capsys, "health", line.url)
        assert code == 2, err


async def test_call_prints_the_json_answer_and_errors_with_their_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(make_plugin()) as (_, line, _):
        put = '{"key": "greeting", "value": "aGk="}'
        code, out, err = await run_cli(capsys, "call", line.url, "kv.v1.KVService/Put", put)
        assert (code, out) == (0, "{}\n"), err

        code, out, err = await run_cli(
            capsys, "call", line.url, "/kv.v1.KVService/Get", '{"key": "greeting"}'
        )
        assert code == 0, err
        assert out == '{\n  "value": "aGk=",\n  "found": true\n}\n'

        monkeypatch.setattr("sys.stdin", io.StringIO('{"key": ""}'))
        code, out, err = await run_cli(capsys, "call", line.url, "kv.v1.KVService/Get", "-")
        assert (code, out) == (3, "")
        assert err == "invalid_argument: key cannot be empty\n"

        code, _, err = await run_cli(capsys, "call", line.url, "kv.v1.KVService/Nope")
        assert code == 3
        assert err.startswith("unimplemented: ")

        code, _, err = await run_cli(capsys, "call", line.url, "kv.v1.KVService/Get", "[1]")
        assert code == 1
        assert "must be a JSON object" in err

        code, _, err = await run_cli(capsys, "call", line.url, "Get", "{}")
        assert code == 1
        assert "expected METHOD as package.Service/Method" in err

    code, _, err = await run_cli(
        capsys, "call", f"127.0.0.1:{closed_port()}", "kv.v1.KVService/Get", "{}"
    )
    assert code == 2
    assert "failed to connect" in err


async def test_call_reads_the_body_from_a_file_and_sends_headers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "get.json"
    body.write_text('{"key": "missing"}')
    async with serving(make_plugin()) as (_, line, _):
        code, out, err = await run_cli(
            capsys, "call", line.url, "kv.v1.KVService/Get", f"@{body}", "-H", "x-trace: 1"
        )
        assert (code, out) == (0, "{}\n"), err
        code, _, err = await run_cli(capsys, "call", line.url, "kv.v1.KVService/Get", "-H", "x")
        assert code == 1
        assert "expected a header as 'NAME: VALUE'" in err


async def test_a_server_that_accepts_but_never_answers_is_an_rpc_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as silent:  # the kernel accepts connections; nobody reads them
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code, _, err = await run_cli(capsys, "health", address, "--timeout", "0.3")
        assert code == 3
        assert "deadline_exceeded" in err
        code, _, err = await run_cli(capsys, "call", address, "a.B/C", "--timeout", "0.3")
        assert (code, err) == (3, "deadline_exceeded: no answer within 0.3 s\n")
        code, _, err = await run_cli(capsys, "ls", address, "--timeout", "0.3")
        assert code == 3


async def test_health_and_call_over_a_unix_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    socket_path = tmp_path / "kv.sock"
    async with serving(make_plugin(), uds=str(socket_path)) as (_, line, _out):
        url = f"unix://{socket_path}"
        assert line.network == "unix"
        code, out, err = await run_cli(capsys, "health", url)
        assert code == 0, err
        assert out.endswith("status: SERVING\n")
        code, out, err = await run_cli(capsys, "call", url, "kv.v1.KVService/List", "{}")
        assert code == 0, err
        assert json.loads(out) == {}
