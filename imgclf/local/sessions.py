"""Child processes in sessions of their own, and how to stop all that they leave behind.

A model container's server starts daemons that outlive the command that started them (`ray start`
returns, leaving Ray's GCS server and raylet; TorchServe forks its Java frontend and workers), and
some of those move to process groups of their own (Ray's actors). None of them leaves the session
the command was started in, so a session is what a container stops. Linux only (/proc).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

GRACE_SECONDS = 5.0
KILL_TIMEOUT_SECONDS = 20.0


def spawn(command: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`command` in a new session (its id is the pid), its output appended to `log_path`."""
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        return subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def members(sessions: list[int]) -> list[int]:
    """Live (not zombie) processes in `sessions`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        state, _parent, _group, session = stat.rsplit(")", 1)[1].split()[:4]
        if state != "Z" and int(session) in sessions:
            found.append(int(entry.name))
    return found


def stop(sessions: list[int], children: list[subprocess.Popen]) -> None:
    """SIGTERM every process in `sessions`, SIGKILL what is left after a grace period (Ray's GCS
    server ignores SIGTERM); `children` (our own) are reaped, so that they do not linger as zombies."""
    for sig, wait in ((signal.SIGTERM, GRACE_SECONDS), (signal.SIGKILL, KILL_TIMEOUT_SECONDS)):
        for pid in members(sessions):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for child in children:
                child.poll()
            if not members(sessions):
                return
            time.sleep(0.2)
