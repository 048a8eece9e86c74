"""Generate the conformance suite's Python code at run time, into a cache that is never committed.

The protos ship with the suite (``../shared/conformance/upstream/proto``); grpc_tools.protoc and
protoc-gen-connectrpc (the dev extras) turn them into google-protobuf messages and connectrpc
services, as ``tools/protogen.py`` does for the project's own protos. The generated files import
``connectrpc.conformance.v1...``, which would shadow the connectrpc library, so those imports are
rewritten to the private package ``conformance_gen``. The cache folder is keyed by a fingerprint
of the protos and the generators, so a new suite or generator regenerates it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = Path(os.environ.get("CONFORMANCE_DIR") or ROOT.parent / "shared" / "conformance")
"""The suite: ``../shared/conformance`` beside the project, or ``$CONFORMANCE_DIR``."""
PROTO_ROOT = SUITE / "upstream" / "proto"
RUNNER = SUITE / "bin" / "connectconformance"
CACHE = ROOT / "build" / "conformance"
PACKAGE = "conformance_gen"
_GENERATORS = ("grpcio-tools", "protoc-gen-connectrpc", "protobuf")
_DONE = "GENERATED"


def _fingerprint(protos: list[Path]) -> str:
    digest = hashlib.sha256()
    for proto in protos:
        digest.update(str(proto.relative_to(PROTO_ROOT)).encode() + b"\0" + proto.read_bytes())
    for name in _GENERATORS:
        digest.update(f"{name}={importlib.metadata.version(name)}".encode())
    return digest.hexdigest()[:16]


def _protoc_plugin() -> str:
    beside = Path(sys.executable).parent / "protoc-gen-connectrpc"
    found = str(beside) if beside.exists() else shutil.which("protoc-gen-connectrpc")
    if not found:
        raise RuntimeError("protoc-gen-connectrpc not found: install the dev extras (.[dev])")
    return found


def _generate(protos: list[Path], out: Path) -> None:
    package_dir = out / PACKAGE
    package_dir.mkdir(parents=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={package_dir}",
            f"--pyi_out={package_dir}",
            f"--plugin=protoc-gen-connectrpc={_protoc_plugin()}",
            f"--connectrpc_out={package_dir}",
            "--connectrpc_opt=protobuf=google",
            *(str(p.relative_to(PROTO_ROOT)) for p in protos),
        ],
        check=True,
    )
    own = re.compile(r"^(from|import) connectrpc\.conformance\b", flags=re.M)
    for py in package_dir.rglob("*.py*"):
        py.write_text(own.sub(rf"\1 {PACKAGE}.connectrpc.conformance", py.read_text()))
    for folder in [package_dir, *(d for d in package_dir.rglob("*") if d.is_dir())]:
        (folder / "__init__.py").touch()
    (out / _DONE).touch()


def ensure_generated() -> Path:
    """Generate the code unless the cache holds it; return the folder to put on ``sys.path``.

    Concurrent callers (the runner starts servers in parallel) each generate into a private
    folder and rename it into place; the first rename wins, the others discard theirs.
    """
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    if not protos:
        raise FileNotFoundError(f"no conformance protos under {PROTO_ROOT}")
    target = CACHE / _fingerprint(protos)
    if (target / _DONE).exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gen-", dir=CACHE))
    try:
        _generate(protos, scratch / "out")
        with contextlib.suppress(OSError):  # another process got there first
            (scratch / "out").rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not (target / _DONE).exists():
        raise RuntimeError(f"generating the conformance code into {target} failed")
    return target


def ensure_importable() -> None:
    """Generate if needed and make ``conformance_gen`` importable."""
    folder = str(ensure_generated())
    if folder not in sys.path:
        sys.path.insert(0, folder)


if __name__ == "__main__":
    print(ensure_generated())
