"""The committed generated code is what `make proto` produces, and it is wire-compatible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plugin_di.gen.connectplugin.v1 import handshake_pb2, registry_pb2

ROOT = Path(__file__).resolve().parent.parent


def test_make_proto_would_change_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "protogen.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"stale generated code:\n{result.stderr}"


def test_field_numbers_match_connect_plugin_go() -> None:
    fields = {f.name: f.number for f in handshake_pb2.HandshakeRequest.DESCRIPTOR.fields}
    assert fields["self_id"] == 10
    assert fields["self_version"] == 11
    assert fields["magic_cookie_value"] == 4
    response = {f.name: f.number for f in handshake_pb2.HandshakeResponse.DESCRIPTOR.fields}
    assert response["runtime_token"] == 11
    services = handshake_pb2.DESCRIPTOR.services_by_name
    assert services["HandshakeService"].full_name == "connectplugin.v1.HandshakeService"
    watch = registry_pb2.DESCRIPTOR.services_by_name["ServiceRegistry"].methods_by_name
    assert watch["WatchService"].output_type.full_name == "connectplugin.v1.WatchServiceEvent"
