"""docs/writing-a-plugin.md followed from a fresh install, in a separate project: its .proto
file, ``plugin-di proto gen``, its implementation, its one-line declaration, its app with a
process plugin, its tests, a fake in place of the plugin (docs/testing.md), and ``mypy
--strict`` over all of it. The code is the page's own blocks, so the page cannot drift."""

from __future__ import annotations

import json
import re

from plugin_di.plugin.handshake_line import HandshakeLine
from tests.packaging.support import REPO, UserProject
from tests.support.processes import PluginProcess, read_line

PAGE = (REPO / "docs" / "writing-a-plugin.md").read_text()


def _block(language: str, containing: str) -> str:
    """The page's first ``language`` code block that contains ``containing``."""
    for block in re.findall(rf"```{language}\n(.*?)```", PAGE, flags=re.S):
        if containing in block:
            return str(block)
    raise AssertionError(f"docs/writing-a-plugin.md has no {language} block with {containing!r}")


def _write_the_pages_project(project: UserProject) -> None:
    project.write("proto/greet/v1/greet.proto", _block("proto", "service GreeterService"))
    project.write("myapp/__init__.py", "")
    project.write("myapp/greet/__init__.py", "")
    project.write("myapp/greet/greeter.py", _block("python", "class Greeter(GreeterService)"))
    declaration = _block("python", "plugin = greeter_plugin(Greeter())")
    imports = "from myapp.greet.greeter import Greeter\n"
    project.write("myapp/greet/plugin.py", imports + declaration)
    project.write("myapp/greet/__main__.py", _block("python", "sys.exit(serve(plugin))"))
    project.write("myapp/app.py", _block("python", "class AppContainer"))
    tests = _block("python", "async def test_the_app_calls_the_plugin_process")
    project.write(
        "test_greet.py",
        "from gen.greet.v1.greet_pb2 import GreetRequest\n"
        "from gen.greet.v1.greet_plugin import GreeterServiceClient\n"
        "from myapp.app import AppContainer\n"
        "from myapp.greet.plugin import plugin\n" + tests,
    )
    # docs/testing.md: the plugin replaced by a fake implementation, through the same client
    project.write(
        "test_fake.py",
        """
        from gen.greet.v1.greet_connect import GreeterService
        from gen.greet.v1.greet_pb2 import GreetRequest, GreetResponse
        from connectrpc.request import RequestContext

        from myapp.app import AppContainer
        from plugin_di.testing import Overrides, StartedApps


        class FakeGreeter(GreeterService):
            async def greet(
                self, request: GreetRequest, ctx: RequestContext[GreetRequest, GreetResponse]
            ) -> GreetResponse:
                return GreetResponse(greeting=f"Hi {request.name}", served_by="fake")


        async def test_the_app_with_a_fake_greeter(
            di_override: Overrides, di_started: StartedApps
        ) -> None:
            container = AppContainer()
            di_override(container, greet=FakeGreeter())
            app = await di_started(container)
            assert await app.container.welcome().message("you") == "Hi you (served by fake)"
        """,
    )
    project.write("pytest.ini", "[pytest]\nasyncio_mode = auto\n")


def test_the_page_works_from_a_fresh_install(user_project: UserProject) -> None:
    _write_the_pages_project(user_project)
    generated = user_project.run("plugin-di", "proto", "gen")
    assert "files in gen" in generated.stdout
    assert (user_project.root / "gen/greet/v1/greet_plugin.py").is_file()
    ran = user_project.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert "3 passed" in ran.stdout, ran.stdout
    checked = user_project.mypy_strict("myapp", "test_greet.py", "test_fake.py")
    assert "Success: no issues found" in checked.stdout


def test_the_protocols_protos_ship_with_the_install(user_project: UserProject) -> None:
    where = user_project.run("plugin-di", "proto", "path").stdout.strip()
    assert where.startswith(str(user_project.venv.root)), where
    assert (user_project.venv.root / where / "connectplugin/v1/handshake.proto").is_file()


def test_the_command_line_reaches_the_pages_plugin(user_project: UserProject) -> None:
    """docs/cli.md from the fresh install: serve the page's plugin, probe it, call it."""
    _write_the_pages_project(user_project)
    user_project.run("plugin-di", "proto", "gen")
    version = user_project.run("plugin-di", "--version").stdout
    assert version.split()[-1][:1].isdigit(), version
    proc = user_project.spawn(
        "plugin-di", "serve", "myapp.greet.plugin:plugin", "--bind", "127.0.0.1:0"
    )
    line = read_line(proc)
    served = PluginProcess(proc, HandshakeLine.parse(line), []) if line else None
    try:
        assert served is not None, "plugin-di serve printed no handshake line"
        healthy = user_project.run("plugin-di", "health", served.url, check=False)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        called = user_project.run(
            "plugin-di", "call", served.url, "greet.v1.GreeterService/Greet", '{"name": "cli"}'
        )
        assert json.loads(called.stdout)["greeting"] == "Hello, cli!"
        refused = user_project.run(
            "plugin-di", "call", served.url, "greet.v1.GreeterService/Greet", "{}", check=False
        )
        assert refused.returncode == 3, refused.stderr
        assert "invalid_argument" in refused.stderr
    finally:
        if served is not None:
            served.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait(5)
