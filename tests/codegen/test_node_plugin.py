"""The JavaScript greeter (examples/node_plugin): generated from the installed protos, launched
by a plugin-di app as a process plugin, and refusing what the protocol says it must refuse."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from dependency_injector import containers

from examples.greet.gen.greet.v1.greet_pb2 import GreetRequest
from examples.greet.gen.greet.v1.greet_plugin import GreeterServiceClient
from examples.node_plugin.app import node_greeter
from plugin_di.di.providers import plugin_handles
from plugin_di.launch.events import HealthState
from plugin_di.testing import started
from tests.codegen.support import TIMEOUT, node_project
from tests.support.pids import alive, wait_gone
from tests.support.processes import read_line

COOKIE = {"CONNECT_PLUGIN": "d3f40b3c2e1a5f8b9c4d7e6a1b2c3d4e"}


@pytest.fixture(scope="module")
def plugin_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return node_project(tmp_path_factory.mktemp("node_plugin"))


async def test_an_app_launches_the_node_plugin_and_calls_it(plugin_js: Path) -> None:
    class NodeApp(containers.DeclarativeContainer):
        greet = node_greeter(plugin_js)
        client = greet.client(GreeterServiceClient)

    async with started(NodeApp) as app:
        handle = plugin_handles(app.container)["greet"]
        pid = handle.pid
        assert pid is not None
        assert alive(pid)
        assert handle.url.startswith("unix://")  # the launcher's default: a private socket
        client = app.container.client()
        response = await client.greet(GreetRequest(name="plugin-di"))
        assert (response.greeting, response.served_by) == ("Hello, plugin-di!", "node")
        with pytest.raises(ConnectError) as refused:
            await client.greet(GreetRequest(name=""))
        assert refused.value.code is Code.INVALID_ARGUMENT
        assert refused.value.message == "name cannot be empty"
        health = await handle.health()
        assert health.state is HealthState.HEALTHY
    assert wait_gone([pid], timeout=10) == []


def _spawn(plugin_js: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["node", str(plugin_js)],
        cwd=plugin_js.parent,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_a_wrong_magic_cookie_stops_the_plugin_before_it_serves(plugin_js: Path) -> None:
    proc = _spawn(plugin_js, {"CONNECT_PLUGIN": "not-the-cookie"})
    try:
        assert proc.wait(TIMEOUT) == 1
        assert proc.stdout is not None
        assert proc.stdout.read() == ""
        assert proc.stderr is not None
        assert "does not match" in proc.stderr.read()
    finally:
        _stop(proc)


def test_calls_without_the_launch_secret_are_refused(plugin_js: Path) -> None:
    secret = "s3cret-of-this-launch"
    env = {**COOKIE, "PLUGIN_DI_REQUIRE_AUTH": "1", "PLUGIN_DI_LAUNCH_SECRET": secret}
    proc = _spawn(plugin_js, env)
    try:
        line = read_line(proc, timeout=TIMEOUT).strip()
        core, app, network, address, protocol, cert = line.split("|")
        assert (core, app, network, protocol, cert) == ("1", "1", "tcp", "connect", "")
        url = f"http://{address}/greet.v1.GreeterService/Greet"
        body = json.dumps({"name": "x"})
        headers = {"content-type": "application/json"}
        with httpx.Client(timeout=10, trust_env=False) as http:
            anonymous = http.post(url, content=body, headers=headers)
            wrong = http.post(url, content=body, headers={**headers, "authorization": "Bearer no"})
            right = http.post(
                url, content=body, headers={**headers, "authorization": f"Bearer {secret}"}
            )
            handshake = http.post(
                f"http://{address}/connectplugin.v1.HandshakeService/Handshake",
                content=json.dumps(
                    {
                        "coreProtocolVersion": 1,
                        "appProtocolVersions": [1, 2],
                        "magicCookieKey": "CONNECT_PLUGIN",
                        "magicCookieValue": COOKIE["CONNECT_PLUGIN"],
                        "requestedPlugins": ["greet", "other"],
                    }
                ),
                headers=headers,
            )
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "unauthenticated"
        assert wrong.json()["code"] == "unauthenticated"
        assert right.json() == {"greeting": "Hello, x!", "servedBy": "node"}
        # the handshake is public, and an unknown plugin is NOT_FOUND (as plugin-di's own)
        assert handshake.json()["code"] == "not_found"
        assert "other" in handshake.json()["message"]
    finally:
        _stop(proc)
