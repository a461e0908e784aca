"""`imgclf local run`: the whole pipeline on this machine, from the same requests as the cloud.

Tune (tuner.py) -> retrain with the best hyperparameters and the debugger (jobs.py) -> report
(report.py) -> gate (gate.py) -> pack model.tar.gz -> serve it behind a local endpoint and the real
Lambda front door (deploy.py). The SageMaker requests come from infra/sagemaker_requests.py, built with local
paths; CLI flags are config overrides, so they change the requests, never a second copy of values.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import time
from pathlib import Path

from imgclf.errors import UserError

#: `--demo` defaults: a few minutes on 2 CPU cores. No ImageNet weights are available offline, so
#: the network trains from random weights with AdamW (SGD from scratch leaves BatchNorm statistics
#: unsettled for the first epochs, and the Overfit rule rightly flags the validation-loss spike).
#: The demo asks for the default 0.8 test accuracy but does not block on the rules: at its scale
#: (about 80 steps) the loss-trend rules (LossNotDecreasing, PoorWeightInitialization's loss check)
#: compare single noisy per-batch losses 5-10 steps apart and may fire on a run that learns well.
#: Their verdicts are in the report; the default config blocks on them. Gradients and weights are
#: saved every 50 steps (the default, 500, would leave this short run only step 0), losses every step.
DEMO_OVERRIDES = {
    "training": {"image_size": 64, "pretrained": "none", "unfreeze": "all", "optimizer": "adamw", "epochs": 2},
    "tuning": {"max_jobs": 3, "max_parallel_jobs": 2, "lr_min": 0.0003, "lr_max": 0.003, "batch_sizes": [16, 32]},
    "debugger": {"save_interval": 50, "profile_steps": 5},
    "gate": {"block_on_rules": False},
}
DEMO_PER_CLASS = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="class sub-folders, or train/ valid/ test/ splits")
    source.add_argument("--demo", action="store_true", help="generate and use the offline demo dataset")
    parser.add_argument("--config", type=Path, help="JSON config file (the same one cdk reads)")
    parser.add_argument("--trials", type=int, help="tuning.max_jobs")
    parser.add_argument("--parallel", type=int, help="tuning.max_parallel_jobs")
    parser.add_argument("--epochs", type=int, help="training.epochs")
    parser.add_argument("--image-size", type=int, help="training.image_size")
    parser.add_argument("--out", type=Path, help="run folder (default runs/<time>)")
    parser.add_argument("--resume", action="store_true", help="reuse the finished trials and jobs in --out")
    parser.add_argument("--port", type=int, default=8080, help="front door port, 0 = any free (default %(default)s)")
    parser.add_argument("--endpoint-port", type=int, default=0, help="endpoint port (default any free)")
    parser.add_argument("--no-serve", action="store_true", help="stop after the report (CI, tests)")


def build_config(args: argparse.Namespace):
    """The config file (or the defaults), the demo's overrides, then the flags. `--trials N` alone
    also lowers the parallel jobs to N, since more slots than trials is a config error."""
    from infra.config import ConfigError, load_config, read_config_file

    overrides: dict = json.loads(json.dumps(DEMO_OVERRIDES)) if args.demo else {}
    for section, key, value in (("tuning", "max_parallel_jobs", args.parallel),
                                ("training", "epochs", args.epochs), ("training", "image_size", args.image_size)):
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    try:
        file_config = read_config_file(args.config) if args.config else None
        if args.trials is not None:
            tuning = overrides.setdefault("tuning", {})
            if args.parallel is None:
                parallel = load_config(file_config, overrides).tuning.max_parallel_jobs
                tuning["max_parallel_jobs"] = min(parallel, args.trials)
            tuning["max_jobs"] = args.trials
        cfg = load_config(file_config, overrides)
    except ConfigError as err:
        raise UserError(str(err)) from None
    return cfg


def run(args: argparse.Namespace) -> int:
    from imgclf.local import pipeline

    cfg = build_config(args)
    # Absolute: the jobs, the container and the front door run in folders of their own.
    out = (args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")).resolve()
    if args.resume and not (out / "run.json").exists():
        raise UserError(f"nothing to resume in {out}: pass the --out of an earlier run")
    if not args.resume and out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; pass --resume to continue that run, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    splits = _dataset(args, out)
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = pipeline.run_pipeline(cfg, out, splits, resume=args.resume, cpus=os.cpu_count() or 1)
    except KeyboardInterrupt:
        source = "--demo" if args.demo else f"--data {shlex.quote(str(args.data))}"
        print(f"\ninterrupted: finished trials stay in {out}; continue with "
              f"`imgclf local run {source} --out {shlex.quote(str(out))} --resume`")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"\npipeline finished in {time.monotonic() - started:.0f} s; report: {out / 'report' / 'summary.md'}")
    if args.no_serve:
        result.container.stop()
        return 0
    from imgclf.local.deploy import serve_until_stopped

    return serve_until_stopped(result.container, cfg, out / "serve", args.port, args.endpoint_port,
                               sample_image=result.sample_image)


def _interrupt(signum, frame) -> None:
    """SIGTERM (a `kill`, a CI runner's stop) ends the run like Ctrl-C: jobs are stopped, not orphaned."""
    raise KeyboardInterrupt


def _dataset(args: argparse.Namespace, out: Path) -> Path:
    """train/ valid/ test/ splits: --data as given or split, or the generated demo set."""
    from imgclf.data_prepare import prepare

    splits = out / "data" / "splits"
    if (splits / "train").is_dir():
        return splits
    if args.demo:
        from imgclf.demo_data import make_demo_dataset

        print(f"generating the demo dataset in {out / 'data'} ...")
        images = make_demo_dataset(out / "data" / "images", per_class=DEMO_PER_CLASS, seed=0)
    else:
        if all((args.data / s).is_dir() for s in ("train", "valid", "test")):
            return args.data.resolve()
        images = args.data
    prepared = prepare(images, splits)
    print(prepared.summary_table())
    for warning in prepared.warnings():
        print(f"warning: {warning}")
    return splits
