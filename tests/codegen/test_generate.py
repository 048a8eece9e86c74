"""`plugin-di proto gen`: the right generators and options, an importable package, clear errors."""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path

import pytest

from plugin_di.cli import proto as proto_cli
from plugin_di.codegen.protos import proto_path, shipped_protos
from tests.codegen.support import GREET_PROTO, ROOT, plugin_di, python


def test_gen_writes_an_importable_package_with_connect_services_and_declarations(
    tmp_path: Path,
) -> None:
    shutil.copytree(GREET_PROTO, tmp_path / "proto")
    result = plugin_di(["proto", "gen"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(package gen)" in result.stdout
    v1 = tmp_path / "gen" / "greet" / "v1"
    names = sorted(p.name for p in v1.iterdir() if p.is_file())
    assert names == [
        "__init__.py",
        "greet_connect.py",
        "greet_pb2.py",
        "greet_pb2.pyi",
        "greet_plugin.py",
    ]
    assert (tmp_path / "gen" / "__init__.py").is_file()
    connect = (v1 / "greet_connect.py").read_text()
    # protobuf=google: the services use protobuf's messages (without it: `greet_pb`)
    assert 'parameter "protobuf=google"' in connect
    assert "from .greet_pb2 import" in connect
    run = python(
        "from gen.greet.v1.greet_plugin import GreeterServiceClient, greeter_plugin\n"
        "plugin = greeter_plugin()\n"
        "service = plugin.service(GreeterServiceClient)\n"
        "print(plugin.name, service.full_name, service.service_type, service.path)\n",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [
        "greeter",
        "greet.v1.GreeterService",
        "greeter",
        "/greet.v1.GreeterService",
    ]


def test_imports_are_rewritten_to_the_package_and_to_the_shipped_protocol(
    tmp_path: Path,
) -> None:
    """A user proto importing another of theirs and one of the protocol's protos."""
    root = tmp_path / "protos" / "shop" / "v1"
    root.mkdir(parents=True)
    (root / "item.proto").write_text(
        'syntax = "proto3";\npackage shop.v1;\nmessage Item { string sku = 1; }\n'
    )
    (root / "shop.proto").write_text(
        'syntax = "proto3";\npackage shop.v1;\n'
        'import "shop/v1/item.proto";\n'
        'import "connectplugin/v1/lifecycle.proto";\n'
        "service ShopService {\n"
        "  rpc Health(connectplugin.v1.GetHealthRequest) returns (Item);\n"
        "}\n"
    )
    out = tmp_path / "src" / "myshop" / "gen"
    result = plugin_di(["proto", "gen", "protos", "-o", "src/myshop/gen"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(package myshop.gen)" in result.stdout  # a src layout: src/ is not the package
    pb2 = (out / "shop" / "v1" / "shop_pb2.py").read_text()
    assert "from myshop.gen.shop.v1 import item_pb2" in pb2
    assert "from plugin_di.gen.connectplugin.v1 import lifecycle_pb2" in pb2
    assert not (out / "connectplugin").exists()  # the protocol's code is plugin-di's own
    run = python(
        "from myshop.gen.shop.v1.shop_plugin import ShopServiceClient, shop_plugin\n"
        "svc = shop_plugin().service(ShopServiceClient).descriptor\n"
        "print(svc.methods_by_name['Health'].input_type.full_name)\n",
        cwd=tmp_path / "src",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "connectplugin.v1.GetHealthRequest"


def test_protos_at_the_root_import_each_other_through_the_package(tmp_path: Path) -> None:
    (tmp_path / "proto").mkdir()
    (tmp_path / "proto" / "money.proto").write_text(
        'syntax = "proto3";\npackage money;\nmessage Amount { int64 cents = 1; }\n'
    )
    (tmp_path / "proto" / "bank.proto").write_text(
        'syntax = "proto3";\npackage bank;\nimport "money.proto";\n'
        "message Balance { money.Amount amount = 1; }\n"
        "service BankService { rpc Get(Balance) returns (Balance); }\n"
    )
    result = plugin_di(["proto", "gen", "-o", "app/gen"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "import app.gen.money_pb2 as" in (tmp_path / "app/gen/bank_pb2.py").read_text()
    run = python(
        "from app.gen.bank_plugin import bank_plugin\n"
        "from app.gen.bank_pb2 import Balance\n"
        "print(Balance(amount={'cents': 5}).amount.cents, bank_plugin().name)\n",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["5", "bank"]


def test_include_folders_resolve_imports_without_generating_them(tmp_path: Path) -> None:
    (tmp_path / "vendor" / "common").mkdir(parents=True)
    (tmp_path / "vendor" / "common" / "money.proto").write_text(
        'syntax = "proto3";\npackage common;\nmessage Amount { int64 cents = 1; }\n'
    )
    (tmp_path / "proto" / "pay").mkdir(parents=True)
    (tmp_path / "proto" / "pay" / "pay.proto").write_text(
        'syntax = "proto3";\npackage pay;\nimport "common/money.proto";\n'
        "message Charge { common.Amount amount = 1; }\n"
    )
    missing = plugin_di(["proto", "gen"], cwd=tmp_path)
    assert missing.returncode == 1
    assert "common/money.proto" in missing.stderr
    result = plugin_di(["proto", "gen", "-I", "vendor"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "gen" / "pay" / "pay_pb2.py").is_file()
    assert not (tmp_path / "gen" / "common").exists()


def test_only_the_files_named_and_without_declarations(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "kv" / "proto", tmp_path / "proto")
    shutil.copytree(GREET_PROTO, tmp_path / "proto", dirs_exist_ok=True)
    result = plugin_di(
        ["proto", "gen", "proto", "greet/v1/greet.proto", "--no-declarations"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "gen" / "kv").exists()
    assert (tmp_path / "gen" / "greet" / "v1" / "greet_connect.py").is_file()
    assert not (tmp_path / "gen" / "greet" / "v1" / "greet_plugin.py").exists()


def test_protoc_errors_are_reported_and_leave_the_output_alone(tmp_path: Path) -> None:
    (tmp_path / "proto").mkdir()
    (tmp_path / "proto" / "bad.proto").write_text('syntax = "proto3";\nmessage {\n')
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "keep.py").write_text("# mine\n")
    result = plugin_di(["proto", "gen"], cwd=tmp_path)
    assert result.returncode == 1
    assert "protoc failed" in result.stderr
    assert "bad.proto:2" in result.stderr  # protoc's own message, with the line
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["keep.py"]


def test_missing_root_and_unknown_package_are_usage_errors(tmp_path: Path) -> None:
    result = plugin_di(["proto", "gen", "nowhere"], cwd=tmp_path)
    assert result.returncode == 2
    assert "nowhere is not a folder of .proto files" in result.stderr
    outside = tmp_path.parent / f"{tmp_path.name}-out"
    result = plugin_di(["proto", "gen", str(GREET_PROTO), "-o", str(outside)], cwd=tmp_path)
    assert result.returncode == 2
    assert "pass --package" in result.stderr
    assert not outside.exists()


@pytest.mark.parametrize("missing", ["grpc_tools", "protoc_gen_connectrpc"])
def test_without_the_codegen_extra_the_error_says_what_to_install(
    tmp_path: Path,
    missing: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == missing else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(GREET_PROTO, tmp_path / "proto")
    args = argparse.Namespace(
        proto_command="gen",
        root=Path("proto"),
        files=[],
        out=Path("gen"),
        package=None,
        include=[],
        no_declarations=False,
    )
    assert proto_cli.run(args) == 1
    err = capsys.readouterr().err
    assert f"needs {missing.replace('_', '-')}" in err
    assert "pip install 'plugin-di[codegen]'" in err
    assert not (tmp_path / "gen").exists()


def test_proto_path_prints_the_shipped_protos(tmp_path: Path) -> None:
    result = plugin_di(["proto", "path"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = Path(result.stdout.strip())
    assert printed == proto_path()
    assert (printed / "connectplugin" / "v1" / "handshake.proto").is_file()
    assert "connectplugin/v1/lifecycle.proto" in shipped_protos()
    assert "grpc/health/v1/health.proto" in shipped_protos()


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ("gen", "gen"),
        ("myapp/gen", "myapp.gen"),
        ("src/myapp/gen", "myapp.gen"),
        ("my-app/gen", None),
        ("../elsewhere", None),
    ],
)
def test_default_package(tmp_path: Path, out: str, expected: str | None) -> None:
    assert proto_cli.default_package(tmp_path / out, tmp_path) == expected
