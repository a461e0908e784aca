"""A job whose DataLoader workers are still alive at exit ends anyway, and quietly.

The workers ignore SIGTERM (so a stop signal to the process group lets the trainer checkpoint),
which multiprocessing's exit handler relies on to stop them: a loader kept alive to the end (by a
reference cycle, here a module global) once hung a finished job forever after its last line."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_process_exits_cleanly_with_a_loaders_workers_still_alive(small_splits, tmp_path):
    script = tmp_path / "keep_loader.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import torch
        from imgclf_serving.preprocess import eval_transform
        from training.data import make_loader, scan_split

        split = scan_split("valid", {str(small_splits / "valid")!r})
        loader = make_loader(split, eval_transform(16), batch_size=4, num_workers=1, train=False,
                             device=torch.device("cpu"))
        batches = sum(1 for _ in loader)
        KEEP = loader  # persistent workers stay up until the interpreter exits
        print("batches", batches, flush=True)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("batches ") and done.stderr == ""
