"""``plugin-di ls`` against a real Host on 127.0.0.1 with a plugin joined and registered."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from examples.kv.plugin import make_plugin
from plugin_di.cli import main
from plugin_di.cli.ls import token_self_id
from plugin_di.clock import FakeClock
from plugin_di.host import join_tokens
from plugin_di.host.admission import AdmissionPolicy, AllowEntry
from plugin_di.host.config import HostConfig
from plugin_di.host.server import Host
from plugin_di.plugin.health import HealthState
from plugin_di.rpc.interceptors.ratelimit import Rate
from plugin_di.rpc.tls import generate_ephemeral_cert
from tests.cli.support import closed_port, run_cli
from tests.support.host import join_host, served


async def test_ls_lists_plugins_services_and_health_without_joining(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = join_tokens.create_key_file(tmp_path / "admission.key")
    key = join_tokens.load_keys(key_file)[0]
    token = join_tokens.issue(key, "ops", [], ttl=300, now=time.time())
    assert token_self_id(token) == "ops"
    policy = AdmissionPolicy(key_file=key_file, allow=(AllowEntry.of("kv", ["kv"]),))
    host = Host(admission=policy)
    await host.start("127.0.0.1:0")
    try:
        async with served(make_plugin()) as (_, plugin_url):
            provider = await join_host(host.url, make_plugin(), "kv", plugin_url)
            try:
                await provider.report_health(HealthState.DEGRADED, "cache cold")
                before = len(host.registry.store.plugins())

                code, out, err = await run_cli(capsys, "ls", host.url, "--token", token)
                assert code == 0, err
                header, row = out.splitlines()
                assert header.split() == ["PLUGIN", "VERSION", "HEALTH", "RUNTIME", "ID",
                                          "SERVICES"]  # fmt: skip
                assert row.startswith("kv ")
                assert "DEGRADED (cache cold)" in row
                assert row.endswith("kv@1.0.0")

                monkeypatch.setenv("PLUGIN_DI_JOIN_TOKEN", token)  # the env works as well
                code, out, err = await run_cli(capsys, "ls", host.url, "--json")
                assert code == 0, err
                (plugin,) = json.loads(out)["plugins"]
                runtime_id = plugin["runtimeId"]
                assert plugin == {
                    "runtimeId": runtime_id,
                    "selfId": "kv",
                    "version": "",
                    "health": "DEGRADED",
                    "reason": "cache cold",
                    "unavailableDependencies": [],
                    "services": [
                        {"type": "kv", "version": "1.0.0", "endpoint": f"/services/kv/{runtime_id}"}
                    ],
                }
                assert len(host.registry.store.plugins()) == before  # ls joined nothing

                # a runtime identity may list too, and `call` goes through the host's router
                identity = provider.identity
                assert identity is not None
                monkeypatch.delenv("PLUGIN_DI_JOIN_TOKEN")
                runtime = ["--token", identity.runtime_token, "-H",
                           f"X-Plugin-Runtime-ID: {identity.runtime_id}"]  # fmt: skip
                listing_url = host.url + "/plugin-di/v1/plugins"
                headers = {
                    "authorization": f"Bearer {identity.runtime_token}",
                    "x-plugin-runtime-id": identity.runtime_id,
                }
                async with httpx.AsyncClient(timeout=10) as plain:
                    listed = await plain.get(listing_url, headers=headers)
                    assert listed.json()["plugins"][0]["runtimeId"] == runtime_id
                    headers["authorization"] = "Bearer forged"
                    refused = await plain.get(listing_url, headers=headers)
                    assert (refused.status_code, refused.json()["code"]) == (
                        401,
                        "unauthenticated",
                    )
                    posted = await plain.post(listing_url)
                    assert posted.json()["code"] == "unimplemented"
                    elsewhere = await plain.get(host.url + "/plugin-di/v1/other")
                    assert elsewhere.json()["code"] == "not_found"

                routed = f"{host.url}/services/kv/{runtime_id}"
                put = '{"key": "k", "value": "dg=="}'
                code, out, err = await run_cli(
                    capsys, "call", routed, "kv.v1.KVService/Put", put, *runtime
                )
                assert (code, out) == (0, "{}\n"), err
                code, out, err = await run_cli(
                    capsys, "call", routed, "kv.v1.KVService/Get", '{"key": "k"}', *runtime
                )
                assert (code, json.loads(out)) == (0, {"value": "dg==", "found": True}), err
                code, _, err = await run_cli(capsys, "call", routed, "kv.v1.KVService/Get", "{}")
                assert code == 3
                assert err.startswith("unauthenticated: ")
            finally:
                await provider.close()
    finally:
        await host.stop()
        await asyncio.sleep(0.05)


async def test_ls_refusals_and_failures_exit_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLUGIN_DI_JOIN_TOKEN", raising=False)
    key_file = join_tokens.create_key_file(tmp_path / "admission.key")
    other_key = join_tokens.load_keys(join_tokens.create_key_file(tmp_path / "other.key"))[0]
    forged = join_tokens.issue(other_key, "ops", [], ttl=300, now=time.time())
    host = Host(admission=AdmissionPolicy(key_file=key_file))
    await host.start("127.0.0.1:0")
    try:
        code, out, err = await run_cli(capsys, "ls", host.url)
        assert (code, out) == (3, "")
        assert err.startswith("plugin-di ls: unauthenticated: plugin 'plugin-di-ls' is not ")

        code, _, err = await run_cli(capsys, "ls", host.url, "--token", forged)
        assert code == 3
        assert "unauthenticated" in err
    finally:
        await host.stop()
        await asyncio.sleep(0.05)

    open_host = Host(admission=AdmissionPolicy(open_registration=True))
    await open_host.start("127.0.0.1:0")
    try:
        code, out, err = await run_cli(capsys, "ls", open_host.url)
        assert (code, out) == (0, "no plugins\n"), err
    finally:
        await open_host.stop()
        await asyncio.sleep(0.05)

    code, _, err = await run_cli(capsys, "ls", f"127.0.0.1:{closed_port()}")
    assert code == 2
    assert "failed to connect" in err
    assert main(["ls", "ftp://x"]) == 1


async def test_ls_over_mtls_is_admitted_by_a_client_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Self-signed client certificates, each trusted as itself (as automatic mTLS pins them):
    # both pass TLS, admission knows only "ops".
    server = generate_ephemeral_cert("host")
    ops, stranger = generate_ephemeral_cert("ops"), generate_ephemeral_cert("stranger")
    files = {
        "clients.pem": ops.cert_pem + stranger.cert_pem,
        "host.pem": server.cert_pem,
        "host.key": server.key_pem,
        "ops.pem": ops.cert_pem,
        "ops.key": ops.key_pem,
        "stranger.pem": stranger.cert_pem,
        "stranger.key": stranger.key_pem,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    policy = AdmissionPolicy(
        allow_cert=(AllowEntry.of("ops", []),), client_ca=tmp_path / "clients.pem"
    )
    host = Host(admission=policy)
    await host.start("127.0.0.1:0", certfile=tmp_path / "host.pem", keyfile=tmp_path / "host.key")
    try:
        assert host.url.startswith("https://")
        tls = ["--tls-ca", str(tmp_path / "host.pem")]
        code, out, err = await run_cli(
            capsys, "ls", host.url, "--self-id", "ops", *tls,
            "--tls-cert", str(tmp_path / "ops.pem"), "--tls-key", str(tmp_path / "ops.key"),
        )  # fmt: skip
        assert (code, out) == (0, "no plugins\n"), err

        code, _, err = await run_cli(
            capsys, "ls", host.url, "--self-id", "stranger", *tls,
            "--tls-cert", str(tmp_path / "stranger.pem"),
            "--tls-key", str(tmp_path / "stranger.key"),
        )  # fmt: skip
        assert code == 3
        assert "unauthenticated" in err
        assert "'stranger' has no --allow-cert entry" in err

        code, _, err = await run_cli(capsys, "ls", host.url, "--self-id", "ops", *tls)
        assert code == 3  # no certificate: the name alone admits nothing
        assert "plugin 'ops' is not admitted" in err
    finally:
        await host.stop()
        await asyncio.sleep(0.05)


async def test_the_listing_is_rate_limited_per_peer_before_the_credential_is_checked() -> None:
    config = HostConfig(rate_limit=Rate(rps=0.001, burst=2))
    host = Host(config, clock=FakeClock(), admission=AdmissionPolicy(open_registration=True))
    await host.start("127.0.0.1:0")
    try:
        url = host.url + "/plugin-di/v1/plugins"
        async with httpx.AsyncClient(timeout=10) as plain:
            answers = [await plain.get(url, headers={"x-plugin-self-id": "ops"}) for _ in range(3)]
        assert [a.status_code for a in answers[:2]] == [200, 200]
        assert answers[0].json() == {"plugins": []}
        assert answers[2].json()["code"] == "resource_exhausted"
    finally:
        await host.stop()
        await asyncio.sleep(0.05)
