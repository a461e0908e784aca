"""Which processes a test left behind: the check that a stopped job orphaned nothing."""
from __future__ import annotations

from pathlib import Path

import psutil


def processes_under(folder: Path) -> list[psutil.Process]:
    """Live processes whose working directory is inside `folder` (a job's toolkit and trainer)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and Path(proc.cwd()).is_relative_to(folder):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found
