"""`PluginServeConfig`: validated once, completed from the environment in one place, and
the keyword arguments `serve` / `serve_async` always took still work; the package faces."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import plugin_di.plugin
from examples.kv.plugin import plugin as kv_plugin
from plugin_di.plugin import PluginConfigError, PluginServeConfig
from plugin_di.plugin.config import MAX_MESSAGE_BYTES, SHUTDOWN_GRACE
from plugin_di.plugin.server import serve, serve_async
from plugin_di.rpc.serving import Limits
from tests.support.inloop import serving

ROOT = Path(__file__).resolve().parents[2]


def test_fields_left_unset_come_from_the_environment() -> None:
    environ = {SHUTDOWN_GRACE: "1.5", MAX_MESSAGE_BYTES: "1024", "PLUGIN_DI_MAX_STREAMS": "7"}
    resolved = PluginServeConfig(bind="127.0.0.1:0").resolved(environ)
    assert resolved.grace_period == 1.5
    assert resolved.max_message_bytes == 1024
    assert resolved.limits == Limits(max_streams=7)
    assert resolved.bind == "127.0.0.1:0"


def test_fields_given_win_over_the_environment() -> None:
    environ = {SHUTDOWN_GRACE: "1.5", MAX_MESSAGE_BYTES: "1024"}
    config = PluginServeConfig(grace_period=0.0, max_message_bytes=99, limits=Limits(max_streams=3))
    resolved = config.resolved(environ)
    assert (resolved.grace_period, resolved.max_message_bytes) == (0.0, 99)
    assert resolved.limits == Limits(max_streams=3)
    defaults = PluginServeConfig().resolved({})
    assert (defaults.grace_period, defaults.max_message_bytes) == (5.0, 4 * 1024 * 1024)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"bind": "127.0.0.1:0", "uds": "/tmp/x.sock"}, "either bind or uds"),
        ({"tls_cert": "cert.pem"}, "both a certificate and a key"),
        ({"grace_period": -1.0}, "grace_period must be"),
        ({"grace_period": float("inf")}, "grace_period must be"),
        ({"max_message_bytes": 0}, "max_message_bytes must be"),
    ],
)
def test_a_bad_configuration_is_refused_when_built(fields: dict[str, object], message: str) -> None:
    with pytest.raises(PluginConfigError, match=message):
        PluginServeConfig(**fields)  # type: ignore[arg-type]


def test_options_apply_over_a_config_and_iterables_are_kept() -> None:
    base = PluginServeConfig(bind="127.0.0.1:0", app_protocol_versions=[1, 2])
    assert base.app_protocol_versions == (1, 2)
    changed = PluginServeConfig.of(base, grace_period=2.0)
    assert (changed.bind, changed.grace_period) == ("127.0.0.1:0", 2.0)
    assert PluginServeConfig.of(base) is base
    once = PluginServeConfig(interceptors=iter([object()]))  # type: ignore[list-item]
    assert len(tuple(once.interceptors)) == len(tuple(once.interceptors)) == 1
    with pytest.raises(TypeError):
        PluginServeConfig.of(None, no_such_option=1)


async def test_serve_async_takes_a_config_or_the_keyword_arguments() -> None:
    config = PluginServeConfig(app_protocol_versions=[7], grace_period=1.0)
    # the helper passes grace_period=5.0 too: keyword arguments apply over the config
    async with serving(kv_plugin, config=config) as (server, line, _):
        assert server.app_protocol_versions == (7,)
        assert line.app_version == 7
        assert server.grace_period == 5.0
    async with serving(kv_plugin, grace_period=2.0, bind="127.0.0.1:0") as (server, line, _):
        assert server.grace_period == 2.0
        assert line.url.startswith("http://127.0.0.1:")


async def test_serve_async_refuses_bind_and_uds_together() -> None:
    with pytest.raises(PluginConfigError, match="either bind or uds"):
        await serve_async(
            kv_plugin, bind="127.0.0.1:0", uds="/tmp/never.sock", environ={}, stdout=io.StringIO()
        )


def test_serve_reports_a_bad_configuration_with_exit_code_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert serve(kv_plugin, bind="127.0.0.1:0", uds="/tmp/never.sock") == 1
    assert "plugin-di serve: give either bind or uds" in capsys.readouterr().err


def test_names_that_moved_out_of_host_client_still_import_with_a_warning() -> None:
    from plugin_di.plugin import host_client, host_session, server

    with pytest.warns(DeprecationWarning, match="import HostSession from plugin_di.plugin"):
        assert host_client.HostSession is host_session.HostSession  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match="serve_on_host"):
        assert host_client.serve_on_host is server.serve_on_host  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = host_client.Nope  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "package",
    ["plugin_di.plugin", "plugin_di.rpc", "plugin_di.host", "plugin_di.cli", "plugin_di.launch"],
)
def test_each_package_lists_its_public_names(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert names, package
    assert not [n for n in names if n.startswith("_")]
    for name in names:
        value = getattr(module, name)
        defined_in = getattr(value, "__module__", None)
        if isinstance(defined_in, str) and defined_in.startswith(package + "."):
            # public names come from public modules; the machinery stays private
            assert not any(part.startswith("_") for part in defined_in.split(".")), name


def test_the_plugin_and_rpc_faces_load_nothing_until_a_name_is_used() -> None:
    probe = (
        "import sys\n"
        "import plugin_di.plugin, plugin_di.rpc\n"
        "print(sorted(m for m in sys.modules if m.startswith('plugin_di')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == str(
        ["plugin_di", "plugin_di._lazy", "plugin_di._version", "plugin_di.plugin", "plugin_di.rpc"]
    )
    assert plugin_di.plugin.PluginServeConfig is PluginServeConfig
