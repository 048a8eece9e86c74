"""The generated plugin declarations: one line per plugin, checked by mypy --strict."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from plugin_di.codegen.declarations import DeclarationError, service_names, snake_case
from tests.codegen.support import GREET_PROTO, TIMEOUT, plugin_di

RIGHT = """
from connectrpc.request import RequestContext
from dependency_injector import containers

from gen.greet.v1.greet_pb2 import GreetRequest, GreetResponse
from gen.greet.v1.greet_plugin import GreeterService, GreeterServiceClient, greeter_plugin
from plugin_di import InMemoryPlugin, Plugin


class Greeter(GreeterService):
    async def greet(
        self, request: GreetRequest, ctx: RequestContext[GreetRequest, GreetResponse]
    ) -> GreetResponse:
        return GreetResponse(greeting=f"Hello, {request.name}!")


plugin: Plugin = greeter_plugin(Greeter())


class AppContainer(containers.DeclarativeContainer):
    greet = InMemoryPlugin(plugin)
    client = greet.client(GreeterServiceClient)
"""

WRONG = """
from gen.greet.v1.greet_pb2 import GreetRequest
from gen.greet.v1.greet_plugin import greeter_plugin


class NotAGreeter:
    async def greet(self, request: GreetRequest) -> str:
        return "hello"


plugin = greeter_plugin(NotAGreeter())
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's project with the greeter's code generated into ``gen``."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(GREET_PROTO, root / "proto")
    result = plugin_di(["proto", "gen"], cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def mypy_strict(project: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    (project / name).write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(project / ".mypy"), name],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        check=False,
    )


def test_a_declaration_in_one_line_passes_mypy_strict(project: Path) -> None:
    result = mypy_strict(project, "app.py", RIGHT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_an_implementation_that_does_not_fit_the_service_fails_mypy(project: Path) -> None:
    result = mypy_strict(project, "wrong.py", WRONG)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Argument 1 to "greeter_plugin" has incompatible type "NotAGreeter"' in result.stdout
    assert 'expected "GreeterService | None"' in result.stdout


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("KVService", "kv"),
        ("GreeterService", "greeter"),
        ("Logger", "logger"),
        ("UserProfileService", "user_profile"),
        ("HTTPProxyService", "http_proxy"),
        ("Service", "service"),
        ("Import", "import_"),
    ],
)
def test_snake_case(name: str, stem: str) -> None:
    assert snake_case(name) == stem


def test_two_services_that_would_collide_are_refused() -> None:
    from google.protobuf import descriptor_pool

    proto = descriptor_pb2.FileDescriptorProto(name="clash/v1/clash.proto", package="clash.v1")
    proto.message_type.add(name="Empty")
    for service in ("Kv", "KvService"):
        method = proto.service.add(name=service).method.add(name="Call")
        method.input_type = method.output_type = ".clash.v1.Empty"
    pool = descriptor_pool.DescriptorPool()
    file = pool.AddSerializedFile(proto.SerializeToString())
    with pytest.raises(DeclarationError, match="Kv, KvService would all be declared as kv_plugin"):
        service_names(file, proto)
