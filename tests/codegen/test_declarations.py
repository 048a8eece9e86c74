"""The generated plugin declarations: one line per plugin, checked by mypy --strict."""

from __future__ import annotations

import shutil
import sys

import pytest
from google.protobuf import descriptor_pb2

from plugin_di.codegen.declarations import DeclarationError, service_names, snake_case
from tests.codegen.support import GREET_PROTO, TIMEOUT, plugin_di, run

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
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    """mypy --strict on a user's project: the greeter generated into ``gen``, a right use of
    its declaration (app.py) and a wrong one (wrong.py), checked in one run."""
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(GREET_PROTO, project / "proto")
    result = plugin_di(["proto", "gen"], cwd=project)
    assert result.returncode == 0, result.stderr
    (project / "app.py").write_text(RIGHT)
    (project / "wrong.py").write_text(WRONG)
    mypy = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", ".mypy"]
    checked = run([*mypy, "app.py", "wrong.py"], project, timeout=TIMEOUT * 2)
    assert checked.returncode in (0, 1), checked.stderr  # 2: mypy itself failed
    return checked.stdout


def test_a_declaration_in_one_line_passes_mypy_strict(mypy_output: str) -> None:
    assert "Found 1 error in 1 file (checked 2 source files)" in mypy_output, mypy_output
    assert [line for line in mypy_output.splitlines() if not line.startswith("wrong.py:")] == [
        "Found 1 error in 1 file (checked 2 source files)"
    ]


def test_an_implementation_that_does_not_fit_the_service_fails_mypy(mypy_output: str) -> None:
    errors = [line for line in mypy_output.splitlines() if line.startswith("wrong.py:11: error:")]
    assert len(errors) == 1, mypy_output
    (error,) = errors
    assert error.startswith(
        'wrong.py:11: error: Argument 1 to "greeter_plugin" has incompatible type "NotAGreeter"'
    )
    assert 'expected "GreeterService | None"' in error


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
