"""Scaling of the trainer from 1 to N data-parallel processes at the same global batch.

Runs training/train.py as one plain process, then under `torchrun --standalone --nproc_per_node N`
for each N of --procs, on the same generated demo data and flags, and reads each run's epoch time
from its last checkpoint (epoch 2 onwards, so start-up and the first epoch's warm-up are left out).
Prints train images per second, the speed-up over one process and the scaling efficiency
(speed-up / N). On a CPU the runs share the machine's cores (one process uses all of them as
threads; under torchrun each of N processes gets one thread, torchrun's default), so the figure is
the cost of the data-parallel machinery, not a speed-up; on a GPU machine each process gets a GPU.

    python benchmarks/distributed_scaling.py --procs 1,2 --arch resnet18 --image-size 32 --per-class 40 --epochs 2
    python benchmarks/distributed_scaling.py --image-size 224 --per-class 256 --batch-size 128   # GPU: 1..all GPUs
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from imgclf.data_prepare import prepare  # noqa: E402
from imgclf.demo_data import make_demo_dataset  # noqa: E402


def default_procs() -> str:
    gpus = torch.cuda.device_count()
    return ",".join(str(n) for n in range(1, gpus + 1)) if gpus > 1 else "1,2"


def run(procs: int, splits: Path, job: Path, args: argparse.Namespace) -> dict:
    """One training run; its train images per second in epochs 2.. (from the newest checkpoint)."""
    job.mkdir(parents=True)
    flags = ["--train", str(splits / "train"), "--valid", str(splits / "valid"), "--model-dir", str(job / "model"),
             "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--image-size", str(args.image_size),
             "--arch", args.arch, "--pretrained", "none", "--unfreeze", "all", "--optimizer", "adamw", "--debugger", "off",
             "--num-workers", str(args.workers)]
    script = str(ROOT / "training" / "train.py")
    launch = [sys.executable, script] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs), script]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    started = time.perf_counter()
    result = subprocess.run(launch + flags, cwd=job, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{procs} process(es) failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    checkpoints = sorted((job / "checkpoints").glob("checkpoint-*.pth"))
    history = torch.load(checkpoints[-1], weights_only=True)["history"][1:]
    images = sum(1 for _ in (splits / "train").rglob("*.*"))
    steps_images = images // args.batch_size * args.batch_size  # the ragged last batch is dropped
    seconds = sum(epoch["seconds"] for epoch in history)
    return {"procs": procs, "img_s": steps_images * len(history) / seconds, "wall_s": time.perf_counter() - started}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--procs", default=default_procs(), help="comma-separated process counts (default: 1,2 on CPU, 1..N GPUs)")
    p.add_argument("--per-class", type=int, default=64, help="demo images per class (4 classes; 80%% train)")
    p.add_argument("--arch", default="resnet50", help="a backbone of imgclf_serving/backbones.py")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16, help="the global batch, the same in every run")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is not timed")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers per process")
    p.add_argument("--threads", type=int, default=0,
                   help="intra-op threads of every process (default: all cores for one process, 1 each under torchrun)")
    args = p.parse_args()
    counts = [int(n) for n in args.procs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_demo_dataset(tmp / "images", per_class=args.per_class, image_size=args.image_size, seed=0)
        prepare(tmp / "images", tmp / "splits", valid_fraction=0.1, test_fraction=0.1, seed=0)
        device = f"{torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else f"{os.cpu_count()} CPU core(s)"
        threads = f"{args.threads} thread(s) per process" if args.threads else "default threads"
        print(f"{device}; {args.arch} {args.image_size} px, global batch {args.batch_size}, "
              f"{args.epochs - 1} timed epoch(s), {threads}; load average {os.getloadavg()[0]:.1f}")
        results = [run(n, tmp / "splits", tmp / f"job-{n}", args) for n in counts]
    base = results[0]["img_s"]
    print(f"{'processes':>9} {'img/s':>8} {'speed-up':>9} {'efficiency':>10} {'wall s':>7}")
    for r in results:
        speedup = r["img_s"] / base
        print(f"{r['procs']:>9} {r['img_s']:>8.1f} {speedup:>9.2f} {speedup / r['procs'] * counts[0]:>10.2f} "
              f"{r['wall_s']:>7.0f}")


if __name__ == "__main__":
    main()
