"""Makes smdebug importable in the training image, without the pins that break it there.

smdebug 1.0.34 is the last release. Its metadata pins pyinstrument==3.4.2, whose C extension has no
wheel for any current Python (and calls `PyFrame_FastToLocals`), and protobuf<=3.20.3, older than the
protobuf the image and its toolkit need. pip cannot install it with those pins, so the toolkit's
`pip install -r requirements.txt` brings only what smdebug really imports, and `ensure_smdebug` adds
smdebug itself with `--no-deps` (requirements-no-deps.txt) the first time the trainer needs it.

smdebug's generated protobuf modules predate protobuf 4, which refuses them unless protobuf runs its
pure-Python implementation; that must be chosen before protobuf is first imported.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from training.errors import TrainerError

NO_DEPS_REQUIREMENTS = Path(__file__).with_name("requirements-no-deps.txt")


def ensure_smdebug() -> None:
    """Select protobuf's pure-Python implementation and install smdebug if it is missing."""
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    if importlib.util.find_spec("smdebug") is not None:
        return
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-r", str(NO_DEPS_REQUIREMENTS)]
    result = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TrainerError(
            f"could not install smdebug for the debugger ({last}); a job without internet access "
            "needs an image that has it, or debugger mode 'off'")
    importlib.invalidate_caches()
