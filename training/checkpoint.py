"""Checkpoints that survive spot interruption: written atomically, resumed from the newest.

SageMaker syncs the checkpoint folder (`/opt/ml/checkpoints`) with S3 and restores it when a
spot job restarts. A file is therefore either complete or absent: it is written to a temporary
name in the same folder and renamed with os.replace (atomic on one file system). The two newest
are kept, so that resume can fall back if the newest one cannot be read.
"""
from __future__ import annotations

import io
import os
import re
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from training.errors import TrainerError

_NAME = re.compile(r"^checkpoint-(\d{4,})\.pth$")
KEEP = 2


def checkpoint_path(directory: Path, epoch: int) -> Path:
    return directory / f"checkpoint-{epoch:04d}.pth"


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to `path` so that `path` never holds a partial file; OSError -> TrainerError.

    Serialised in memory first: torch.save turns a failed write (disk full, quota) into an
    opaque RuntimeError, a plain file write keeps the OSError and its reason."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; serving may read the model as another user
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise TrainerError(f"cannot write {path}: {err.strerror or err}") from None


def _checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the finished checkpoint files, oldest first; temp files are ignored."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_checkpoint(directory: Path, epoch: int, state: dict[str, Any]) -> Path:
    """Write the state as `checkpoint-<epoch>.pth` and prune all but the KEEP newest."""
    path = checkpoint_path(directory, epoch)
    atomic_save(state, path)
    for _, old in _checkpoints(directory)[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def load_latest(directory: Path) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint in `directory` and its path, or None when there is none."""
    for _, path in reversed(_checkpoints(directory)):
        try:
            return torch.load(path, map_location="cpu", weights_only=True), path
        except Exception as err:  # a truncated or foreign file: try the one before it
            print(f"warning: skipping unreadable checkpoint {path}: {str(err).splitlines()[0]}",
                  file=sys.stderr, flush=True)
    return None


class StopFlag:
    """Set by SIGTERM (spot interruption, StopTrainingJob). The training loop polls it between
    steps, so the running step finishes, a checkpoint is written, and the process exits 0.
    A context manager: the previous handler is back afterwards (main() also runs in tests)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "StopFlag":
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum, frame) -> None:
        # Only set the flag: printing here could re-enter a stdout write the signal interrupted.
        self.requested = True
