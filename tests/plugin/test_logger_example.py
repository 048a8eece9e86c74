"""The logger capability example, in memory and as a process."""

from __future__ import annotations

import signal

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from examples.logger.plugin import StderrLogger, make_plugin
from plugin_di.gen.capability.logger.v1 import logger_pb2 as pb
from plugin_di.gen.capability.logger.v1.logger_connect import LoggerClient
from plugin_di.launch.client import PluginClient
from plugin_di.plugin.inprocess import Mode, inprocess_client
from tests.support.processes import running


@pytest.mark.parametrize("mode", ["direct", "asgi"])
async def test_in_memory(mode: Mode) -> None:
    plugin = make_plugin()
    client = inprocess_client(plugin, LoggerClient, mode=mode)
    await client.log(pb.LogRequest(level="info", message="hello", fields={"b": "2", "a": "1"}))
    impl = plugin.services[0].impl
    assert isinstance(impl, StderrLogger)
    assert list(impl.recent) == ["[info] hello a=1 b=2"]
    with pytest.raises(ConnectError) as info:
        await client.log(pb.LogRequest(level="loud", message="x"))
    assert info.value.code == Code.INVALID_ARGUMENT


async def test_as_a_process() -> None:
    with running(["-m", "examples.logger"]) as proc:
        async with PluginClient(proc.url, make_plugin()) as plugins:
            info = plugins.handshake.plugins[0]
            assert [(p.type, p.path) for p in info.provides] == [
                ("logger", "/capability.logger.v1.Logger/")
            ]
            logger = plugins.dispense(LoggerClient)
            await logger.log(pb.LogRequest(level="warn", message="disk low", fields={"pct": "91"}))
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0
        assert "[warn] disk low pct=91" in proc.stderr()
