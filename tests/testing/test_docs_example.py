"""docs/testing.md's example project, run as its reader would: the two files it shows,
written to a fresh directory, and pytest on them in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
QUICK = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")  # hypothesis: seconds to load
FILE_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```python\n(.*?)```", re.DOTALL)


def test_the_example_files_of_docs_testing_pass(tmp_path: Path) -> None:
    files = dict(FILE_BLOCK.findall(DOC.read_text()))
    assert sorted(files) == ["myapp.py", "test_myapp.py"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *QUICK, "-q", "test_myapp.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "4 passed" in out, out
