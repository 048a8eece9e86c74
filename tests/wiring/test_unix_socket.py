"""Local process plugins listen on a Unix socket only their user can open (0600, in a 0700 dir)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dependency_injector import containers

from examples.kv.gen.kv.v1 import kv_pb2
from examples.kv.gen.kv.v1.kv_connect import KVServiceClient
from examples.kv.plugin import make_plugin
from plugin_di.di.app import App
from plugin_di.di.providers import ProcessPlugin, plugin_handles
from plugin_di.rpc.transport import unix_socket_path

ROOT = Path(__file__).resolve().parents[2]


def _gone(path: Path) -> bool:
    return not path.exists()


async def test_process_plugin_socket_is_private_to_its_user() -> None:
    class Container(containers.DeclarativeContainer):
        kv = ProcessPlugin(make_plugin(), module="examples.kv", cwd=str(ROOT))  # the default

    app = App(Container)
    await app.start()
    try:
        url = plugin_handles(app.container)["kv"].url
        assert url.startswith("unix:///")
        path = Path(unix_socket_path(url))
        info = os.stat(path)
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert info.st_uid == os.getuid()
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        kv = app.container.kv.client(KVServiceClient)()
        await kv.put(kv_pb2.PutRequest(key="a", value=b"1"))
    finally:
        await app.stop()
    assert _gone(path)
    assert _gone(path.parent)  # the launcher removed its socket directory
