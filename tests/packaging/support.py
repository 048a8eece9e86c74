"""A fresh install of plugin-di's wheel, used from a project outside the repository.

The wheel is built once per session from the working tree; it is installed with
``pip install --no-deps`` into a new virtual environment whose other dependencies come from
the project's own environment (a ``.pth`` line naming its site-packages): no index, no
network, a few seconds. Every test then gets a `UserProject`: an empty directory outside
the repository, with ``run(*cmd)`` (the venv's ``bin`` first on PATH, the project directory
as the working directory) and ``write(path, text)``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 120.0
"""Seconds any one command may take (a bound, not a speed assertion)."""
MYPY_CACHE = REPO / ".mypy_cache" / "fresh-install"
"""Kept across sessions: mypy revalidates entries by content, so a new venv's copy of the
package hits it too (~1 s a check instead of ~15 s cold)."""


class CommandFailed(AssertionError):
    """A command of the user project exited non-zero; the message carries its output."""


def build_wheel(out: Path) -> Path:
    """The wheel of the working tree, built without build isolation (hatchling from the
    project's environment), so nothing is downloaded."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--no-index", "--quiet", "--wheel-dir", str(out), str(REPO)),
        ],
        check=True,
        timeout=COMMAND_TIMEOUT,
        capture_output=True,
    )
    (wheel,) = out.glob("plugin_di-*.whl")
    return wheel


def wheel_names(wheel: Path) -> set[str]:
    """Every file name in the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def wheel_text(wheel: Path, suffix: str) -> str:
    """The text of the one file in the wheel whose name ends with ``suffix``."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(suffix)]
        return archive.read(name).decode()


@dataclass(frozen=True)
class FreshVenv:
    """A new virtual environment with the wheel installed and nothing else of the repo."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"


def _site_packages(python: Path) -> Path:
    found = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    return Path(found.stdout.strip())


def install_fresh(wheel: Path, root: Path) -> FreshVenv:
    """A venv at ``root`` (no pip of its own) with ``wheel`` installed by this environment's
    pip; the project's site-packages comes after the venv's own on ``sys.path``, so
    ``plugin_di`` is the installed copy while its dependencies are shared."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)],
        check=True,
        timeout=COMMAND_TIMEOUT,
    )
    venv = FreshVenv(root)
    # Installed before the .pth exists, so pip sees an empty venv: never "already satisfied"
    # by the project's own plugin-di, never touching it.
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(venv.python), "install"),
            *("--no-deps", "--no-index", "--ignore-installed", "--quiet", str(wheel)),
        ],
        check=True,
        timeout=COMMAND_TIMEOUT,
        capture_output=True,
    )
    # A plain path line: the project's own .pth files (its editable plugin_di) stay unread,
    # and the venv's own site-packages comes first.
    shared = sysconfig.get_paths()["purelib"]
    (_site_packages(venv.python) / "_project_deps.pth").write_text(shared + "\n")
    return venv


@dataclass
class UserProject:
    """A user's project directory outside the repository, using the fresh install."""

    root: Path
    venv: FreshVenv
    env: dict[str, str] = field(default_factory=dict)

    def write(self, path: str, text: str) -> Path:
        """Write ``text`` (dedented) to ``path`` under the project; parents are created."""
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))
        return target

    def run(
        self, *cmd: str | Path, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the project directory with the venv's ``bin`` first on PATH (as
        after ``source .venv/bin/activate``); raise `CommandFailed` with its output when it
        exits non-zero and ``check`` is set."""
        env, args = self._command(cmd)
        done = subprocess.run(
            args, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise CommandFailed(
                f"{' '.join(args)} exited {done.returncode}\n"
                f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
            )
        return done

    def spawn(self, *cmd: str | Path) -> subprocess.Popen[str]:
        """Start ``cmd`` as `run` would, without waiting: a server the test stops by its pid
        (`tests.support.processes.PluginProcess.stop`)."""
        env, args = self._command(cmd)
        return subprocess.Popen(
            args,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _command(self, cmd: tuple[str | Path, ...]) -> tuple[dict[str, str], list[str]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(
            PATH=f"{self.venv.bin}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(self.venv.root),
            **self.env,
        )
        args = [str(part) for part in cmd]
        if shutil.which(args[0], path=env["PATH"]) is None:
            raise CommandFailed(f"{args[0]}: not found on the fresh venv's PATH")
        return env, args

    def mypy_strict(self, *files: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``mypy --strict files`` against the fresh install (the project's mypy, pointed at
        the venv's interpreter, as a user's editor or CI would run it)."""
        return self.run(
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--python-executable",
            self.venv.python,
            "--cache-dir",
            MYPY_CACHE,
            *files,
            check=check,
        )
