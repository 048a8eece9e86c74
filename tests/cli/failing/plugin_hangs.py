"""A plugin module whose import never ends, after starting a child of its own."""

import os
import subprocess
import sys
import time
from pathlib import Path

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
Path(os.environ["HANGS_PIDS"]).write_text(f"{os.getpid()} {child.pid}")
time.sleep(600)
