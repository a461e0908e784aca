"""SIGTERM to `imgclf local run` (a `kill`, a CI runner stopping) ends the run like Ctrl-C: the
running trials are stopped, not orphaned, and the run says how to resume."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from processes import processes_under  # tests/processes.py: tests/ is on the path through its conftest

REPO = Path(__file__).resolve().parents[2]
CONFIG = {
    "training": {"pretrained": "none", "unfreeze": "all", "epochs": 50, "image_size": 16},
    "tuning": {"max_jobs": 2, "max_parallel_jobs": 2, "batch_sizes": [16, 32]},
    "debugger": {"mode": "off"},
}


def test_sigterm_stops_the_running_trials_and_prints_how_to_resume(demo_splits, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgclf", "local", "run", "--data", str(demo_splits), "--config",
         str(tmp_path / "config.json"), "--out", str(out), "--no-serve"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.name().startswith("python") and "train.py" in " ".join(p.cmdline())
                      for p in processes_under(out)) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # let the trainers get going
        proc.send_signal(signal.SIGTERM)
        printed, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, printed[-3000:]
    assert f"--out {out} --resume" in printed
    assert processes_under(out) == []
    described = [json.loads(p.read_text()) for p in (out / "trials").glob("*/describe.json")]
    assert len(described) == 2 and all(d["SecondaryStatus"] == "Interrupted" for d in described)
