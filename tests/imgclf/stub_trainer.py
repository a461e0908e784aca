"""A stand-in training script, bundled and launched through the real sagemaker-training toolkit.

It trains nothing: it prints metric lines whose values are a known function of the hyperparameters
(valid_loss is smallest at lr = 1e-3), crashes when batch-size is CRASH_BATCH, and prints the
rule and test lines a test asks for through the env vars STUB_RULES (`Overfit=1,...`) and
STUB_TEST_ACC, which the job inherits; STUB_EPOCH_SECONDS makes each epoch take that long. Tuner,
job-folder and gate behaviour can so be tested in seconds, with the toolkit's real launch path.
"""
from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path

CRASH_BATCH = "7"

SCRIPT = r'''
import argparse, math, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, required=True)
p.add_argument("--batch-size", required=True)
p.add_argument("--epochs", type=int, default=2)
args, _ = p.parse_known_args()
print("stub trainer starting", flush=True)
if args.batch_size == "%s":
    print("simulated crash: CUDA out of memory (stub)", flush=True)
    sys.exit(3)
for epoch in range(1, args.epochs + 1):
    time.sleep(float(os.environ.get("STUB_EPOCH_SECONDS", "0")))
    valid = (math.log10(args.lr) + 3) ** 2 + 1.0 / epoch
    print(f"epoch={epoch} train_loss={valid + 0.5:.6f} train_acc=0.5 valid_loss={valid:.6f} valid_acc=0.5", flush=True)
for pair in filter(None, os.environ.get("STUB_RULES", "").split(",")):
    print(f"rule_{pair}", flush=True)
print(f"test_loss=0.2 test_acc={os.environ.get('STUB_TEST_ACC', '0.9')}", flush=True)
''' % CRASH_BATCH


def expected_valid_loss(lr: float, epoch: int) -> float:
    return (math.log10(lr) + 3) ** 2 + 1.0 / epoch


def write_bundle(out_dir: Path) -> Path:
    """source.tar.gz holding training/train.py (and no requirements.txt: nothing to install)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "source.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        data = SCRIPT.encode()
        info = tarfile.TarInfo("training/train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return target


def write_splits(root: Path) -> Path:
    for split in ("train", "valid", "test"):
        (root / split / "a").mkdir(parents=True, exist_ok=True)
    return root


def read_hyperparameters(job_dir: Path) -> dict:
    return json.loads((job_dir / "input" / "config" / "hyperparameters.json").read_text())
