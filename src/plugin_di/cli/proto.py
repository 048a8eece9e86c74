"""``plugin-di proto gen|path``: generate a plugin's code; where the protocol's protos are.

``plugin-di proto gen`` runs protoc with the generators and options a Python plugin needs
(messages, connectrpc services with ``protobuf=google``, typed plugin declarations) and
makes the output an importable package. It needs the codegen extra
(``pip install 'plugin-di[codegen]'``). ``plugin-di proto path`` prints the directory of
the shipped protocol .proto files, for plugins generated in other languages
(``protoc -I "$(plugin-di proto path)" ...``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "plugin-di proto"

GEN_DESCRIPTION = """\
Generate a plugin's Python code from .proto files: the messages (protobuf), the Connect
services (protoc-gen-connectrpc with protobuf=google) and a typed plugin declaration per
service (<file>_plugin.py). The output is a package of your project: protoc's absolute
imports between generated files are rewritten to it. Needs the codegen extra:
pip install 'plugin-di[codegen]'."""

GEN_EPILOG = """\
examples:
  plugin-di proto gen                          # proto/**/*.proto -> gen/ (package gen)
  plugin-di proto gen proto -o src/myapp/gen   # -> package myapp.gen
  plugin-di proto gen proto greet/v1/greet.proto --package myapp.gen -o myapp/gen"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``plugin-di proto``."""
    sub = parser.add_subparsers(dest="proto_command", required=True, metavar="ACTION")
    gen = sub.add_parser(
        "gen",
        help="generate Python code (messages, Connect services, plugin declarations)",
        description=GEN_DESCRIPTION,
        epilog=GEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument(
        "root",
        metavar="ROOT",
        nargs="?",
        default="proto",
        type=Path,
        help="the folder of your .proto files, their import root (default: proto)",
    )
    gen.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="only these .proto files, relative to ROOT (default: every .proto under ROOT)",
    )
    gen.add_argument(
        "-o", "--out", type=Path, default=Path("gen"), help="output folder (default: gen)"
    )
    gen.add_argument(
        "-p",
        "--package",
        help="the import name of the output folder, e.g. myapp.gen (default: the output "
        "folder's path from the current directory, with dots)",
    )
    gen.add_argument(
        "-I",
        "--include",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="another folder of imported .proto files (the protocol's own are always found)",
    )
    gen.add_argument(
        "--no-declarations",
        action="store_true",
        help="skip the typed plugin declarations (<file>_plugin.py)",
    )
    sub.add_parser(
        "path",
        help="print the folder of the protocol's .proto files",
        description="Print the folder of the .proto files installed with plugin-di, for "
        'code in other languages: protoc -I "$(plugin-di proto path)" ...',
    )


def default_package(out: Path, cwd: Path) -> str | None:
    """``gen`` -> ``gen``, ``src/myapp/gen`` -> ``myapp.gen`` (a ``src`` layout); None when
    ``out`` is outside ``cwd`` or not made of identifiers."""
    try:
        parts = out.resolve().relative_to(cwd.resolve()).parts
    except ValueError:
        return None
    if parts[:1] == ("src",) and len(parts) > 1:
        parts = parts[1:]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


def _gen(args: argparse.Namespace) -> int:
    from plugin_di.codegen import CodegenError, GenerateOptions, generate

    package = args.package or default_package(args.out, Path.cwd())
    if package is None:
        print(
            f"{PROG} gen: cannot tell the import name of {args.out}: pass --package "
            "(e.g. --package myapp.gen)",
            file=sys.stderr,
        )
        return 2
    if not args.root.is_dir():
        print(f"{PROG} gen: {args.root} is not a folder of .proto files", file=sys.stderr)
        return 2
    options = GenerateOptions(
        proto_root=args.root,
        out_dir=args.out,
        package=package,
        files=tuple(args.files),
        includes=tuple(args.include),
        declarations=not args.no_declarations,
    )
    try:
        written = generate(options)
    except CodegenError as exc:
        print(f"{PROG} gen: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} files in {args.out} (package {package})")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``plugin-di proto gen`` or ``plugin-di proto path``."""
    if args.proto_command == "path":
        from plugin_di.codegen.protos import proto_path

        print(proto_path())
        return 0
    return _gen(args)
