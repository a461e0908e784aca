"""Fine-tunes an image classifier: the SageMaker script-mode entry point, also run by hand.

The SageMaker training toolkit runs `python training/train.py --name value ...` from the source
root, with one `--name value` pair per hyperparameter (its own `sagemaker_*` keys and
`_tuning_objective_metric` removed) and the channels and output folders in `SM_*` variables.
Every path also has a flag, so the same script runs locally:

    python training/train.py --train data/train --valid data/valid --test data/test \
        --model-dir out/model --epochs 2 --image-size 64 --pretrained none

Metrics go to stdout in the format of training/metrics.py, which the MetricDefinitions regexes read.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `training` and `serving` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn

from imgclf_serving.backbones import ARCHITECTURES, DEFAULT_ARCH, UNFREEZE
from imgclf_serving.optimized_forward import FORWARDS
from imgclf_serving.preprocess import eval_transform
from training.checkpoint import StopFlag, load_latest, save_checkpoint
from training.debugger_collections import DEFAULT_SAVE_INTERVAL
from training import distributed, optimize, optimized_checks, rule_overrides_argument
from training.data import load_splits, make_loader, train_transform
from training.distributed import Distributed
from training.errors import TrainerError
from training.evaluation import evaluation, upload_uri, write_evaluation
from training.instrumentation import TRIAL_DIR, Instrumentation
from training.metrics import format_epoch_line, format_metric_line
from training.model import build_model, train_mode
from training.model_dir import write_model_dir
from training.monitoring_baseline import write_baseline
from training.predictions import predictions
from training.rules import rule_parameters

#: Launcher arguments that are not ours (SageMaker's own, tuning's objective): ignored.
IGNORED_PREFIXES = ("_", "sagemaker_")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad value is a TrainerError (one line on stderr) instead of usage + exit."""

    def error(self, message: str):
        raise TrainerError(message)


def _int_at_least(minimum: int):
    """An argparse type for whole numbers >= minimum; accepts "32.0" (a JSON-decoded number)."""
    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not value.is_integer() or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return int(value)
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _json_object(text: str) -> dict:
    """JSON, or JSON percent-encoded as the pipeline sends it (training/rule_overrides_argument.py)."""
    try:
        value = rule_overrides_argument.from_argument(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text[:60]!r}: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text[:60]!r}")
    return value


def _env_path(name: str) -> str | None:
    return os.environ.get(name) or None


def _default_workers() -> int:
    """min(8, CPUs per process): torchrun starts LOCAL_WORLD_SIZE processes on each host."""
    per_process = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(8, per_process))


def get_args_parser() -> argparse.ArgumentParser:
    p = _Parser(description=__doc__.splitlines()[0], allow_abbrev=False)
    paths = p.add_argument_group("paths (default from the SageMaker environment)")
    paths.add_argument("--train", default=_env_path("SM_CHANNEL_TRAIN"), help="train ImageFolder")
    paths.add_argument("--valid", default=_env_path("SM_CHANNEL_VALID"), help="validation ImageFolder")
    paths.add_argument("--test", default=_env_path("SM_CHANNEL_TEST"), help="test ImageFolder (optional)")
    paths.add_argument("--model-dir", default=_env_path("SM_MODEL_DIR"), help="where the model is written")
    paths.add_argument("--output-data-dir", default=_env_path("SM_OUTPUT_DATA_DIR"),
                       help="reports (default: <model-dir>/../output/data, as in /opt/ml)")
    paths.add_argument("--checkpoint-dir", default=None,
                       help="checkpoints (default: <model-dir>/../checkpoints, i.e. /opt/ml/checkpoints in a job)")
    paths.add_argument("--evaluation-prefix", default=None,
                       help="also write the test evaluation to <prefix>/<TRAINING_JOB_NAME>/evidence/evaluation.json "
                            "(an s3:// URI or a folder; training/evaluation.py)")
    hp = p.add_argument_group("hyperparameters")
    hp.add_argument("--epochs", type=_int_at_least(1), default=5)
    hp.add_argument("--lr", type=_positive_float, default=1e-3, help="peak learning rate (cosine decay)")
    hp.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="sgd",
                    help="sgd (momentum 0.9) fine-tunes pretrained weights; adamw trains from scratch faster")
    hp.add_argument("--batch-size", type=_int_at_least(1), default=32)
    hp.add_argument("--image-size", type=_int_at_least(16), default=224)
    hp.add_argument("--arch", choices=ARCHITECTURES, default=DEFAULT_ARCH)
    hp.add_argument("--pretrained", default="imagenet",
                    help="imagenet (download) | channel (SM_CHANNEL_PRETRAINED) | none | a .pth path")
    hp.add_argument("--unfreeze", choices=UNFREEZE, default="last",
                    help="what trains: the head, the last stage and the classifier, or all")
    hp.add_argument("--num-workers", type=_int_at_least(0), default=_default_workers(),
                    help="DataLoader workers per process (default: the CPUs shared by this host's processes, at most 8)")
    hp.add_argument("--amp", choices=("auto", "on", "off"), default="auto", help="auto: on with a GPU")
    hp.add_argument("--seed", type=int, default=0)
    hp.add_argument("--optimize", choices=FORWARDS, default="none",
                    help="the CPU forward to produce for serving after training (training/optimize.py)")
    hp.add_argument("--serving-python", default=None,
                    help="the serving container's Python (X.Y) whose ONNX Runtime the model dir ships; default this one")
    hp.add_argument("--max-optimized-accuracy-drop", type=float, default=optimized_checks.DEFAULT_MAX_DROP,
                    help="the most test top-1 the optimized forward may lose to fp32, else fp32 serves")
    hp.add_argument("--min-optimized-agreement", type=float, default=optimized_checks.DEFAULT_MIN_AGREEMENT,
                    help="the least share of test images its top-1 must share with fp32, else fp32 serves")
    dbg = p.add_argument_group("debugging and profiling (training/instrumentation.py)")
    dbg.add_argument("--debugger", choices=("portable", "managed", "off"), default="portable")
    dbg.add_argument("--save-interval", type=_int_at_least(1), default=DEFAULT_SAVE_INTERVAL)
    dbg.add_argument("--profile-steps", type=_int_at_least(0), default=10)
    dbg.add_argument("--rule-params", type=_json_object, default={},
                     help='JSON overrides of the rules\' defaults, e.g. \'{"Overfit": {"patience": 3}}\' '
                          '(or that JSON percent-encoded, as the pipeline sends it)')
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Known flags; `_*`/`sagemaker_*` flags (and their values) ignored; anything else an error."""
    parser = get_args_parser()
    args, unknown = parser.parse_known_args(argv)
    rejected, skip_value = [], False
    for token in unknown:
        if skip_value and not token.startswith("--"):
            skip_value = False
            continue
        name = token[2:].split("=", 1)[0] if token.startswith("--") else None
        skip_value = name is not None and name.startswith(IGNORED_PREFIXES) and "=" not in token
        if name is None or not name.startswith(IGNORED_PREFIXES):
            rejected.append(token)
    if rejected:
        parser.error(f"unrecognized arguments: {' '.join(rejected)}")
    for rule, overrides in args.rule_params.items():  # checked before any data is read
        try:
            if not isinstance(overrides, dict):
                raise ValueError(f"rule {rule}: expected an object of parameters, got {overrides!r}")
            rule_parameters(rule, overrides)
        except ValueError as err:
            parser.error(f"argument --rule-params: {err}")
    args.evaluation_uri = upload_uri(args.evaluation_prefix)
    _default_paths(args)
    return args


def _default_paths(args: argparse.Namespace) -> None:
    """Outside SageMaker, reports and checkpoints sit beside --model-dir as they do in /opt/ml."""
    if args.model_dir is None:
        raise TrainerError("no model dir: set SM_MODEL_DIR or pass --model-dir")
    base = Path(args.model_dir).resolve().parent
    args.output_data_dir = args.output_data_dir or str(base / "output" / "data")
    args.checkpoint_dir = args.checkpoint_dir or str(base / "checkpoints")


def _prepare_output_dirs(args: argparse.Namespace) -> None:
    """Fail before training, not after it, when an output folder cannot be written."""
    for flag in ("model_dir", "output_data_dir", "checkpoint_dir"):
        path = Path(getattr(args, flag))
        try:
            path.mkdir(parents=True, exist_ok=True)
            with open(path / ".write-test", "w"):
                pass
            (path / ".write-test").unlink()
        except OSError as err:
            raise TrainerError(f"--{flag.replace('_', '-')} {path} is not writable: {err.strerror or err}") from None


#: name -> (class, keyword arguments); weight decay 1e-4 as in torchvision's references (0.05 for AdamW).
OPTIMIZERS = {
    "sgd": (torch.optim.SGD, {"momentum": 0.9, "weight_decay": 1e-4}),
    "adamw": (torch.optim.AdamW, {"weight_decay": 0.05}),
}


def build_optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    cls, kwargs = OPTIMIZERS[name]
    return cls([p for p in model.parameters() if p.requires_grad], lr=lr, **kwargs)


def train_step(model, loss_fn, optimizer, scaler, amp_dtype, images, targets):
    """Forward, backward and update on one batch (AMP when amp_dtype is set); (outputs, loss)."""
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        outputs = model(images)
        loss = loss_fn(outputs, targets)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return outputs, loss


@dataclass
class TrainingContext:
    """What every training and evaluation step needs, set up once by run_job (torchvision's
    reference passes these one by one, and `args`)."""

    model: nn.Module  # the DistributedDataParallel wrapper under torchrun, else the network itself
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    instrumentation: Instrumentation
    stop: StopFlag
    dist: Distributed

    @property
    def network(self) -> nn.Module:
        """The network itself: what is evaluated, checkpointed and written to the model dir."""
        return self.model.module if self.dist.enabled else self.model

    @property
    def device(self) -> torch.device:
        return self.dist.device


def train_one_epoch(ctx: TrainingContext, loader, epoch: int, resume_at: dict | None = None,
                    print_every: int = 20):
    """One pass over `loader` (an EpochBatches'); returns (progress, finished): progress holds the
    global steps done and the running loss/accuracy sums of all ranks, finished is False when a
    stop was requested on any rank (the step in progress is completed first, on every rank).
    `resume_at` (a stopped epoch's progress) starts after the steps already trained: the batches
    depend only on (seed, epoch), so the rest of the epoch gets the batches an uninterrupted run
    got, and ends with its weights."""
    train_mode(ctx.network)
    ctx.instrumentation.set_mode("train")
    progress = dict(resume_at or {"step": 0, "loss_sum": 0.0, "correct": 0, "seen": 0})
    loader.batch_sampler.set_epoch(epoch, start_step=progress["step"])
    steps = progress["step"] + len(loader)
    tick = time.perf_counter()
    for step, (images, targets) in enumerate(loader, progress["step"] + 1):
        images = images.to(ctx.device, non_blocking=True, memory_format=memory_format(ctx.device))
        targets = targets.to(ctx.device, non_blocking=True)
        started = time.perf_counter()
        outputs, loss = train_step(ctx.model, ctx.loss_fn, ctx.optimizer, ctx.scaler, ctx.amp_dtype, images, targets)
        batch_loss = loss.item()  # synchronises, so compute time below is real on a GPU
        done = time.perf_counter()
        ctx.instrumentation.record_step(started - tick, done - started)
        # One small collective per step: the accuracy counts, and whether any rank got SIGTERM.
        correct, seen, stop = ctx.dist.all_sum([(outputs.argmax(1) == targets).sum().item(), len(targets),
                                                float(ctx.stop.requested)])
        progress["step"] = step
        progress["loss_sum"] += batch_loss * seen  # the loss is the global batch's mean
        progress["correct"] += int(correct)
        progress["seen"] += int(seen)
        if ctx.dist.is_main and (step % print_every == 0 or step == steps):
            print(f"[train] epoch {epoch} step {step}/{steps} loss {batch_loss:.4f}", flush=True)
        if stop:
            return progress, False
        tick = time.perf_counter()
    return progress, True


@torch.no_grad()
def evaluate(ctx: TrainingContext, loader):
    """(mean loss, accuracy) over `loader` (a SplitBatches'), in eval mode, with rank 0's model."""
    network = ctx.network
    ctx.dist.share_buffers(network)
    network.eval()
    ctx.instrumentation.set_mode("eval")
    total_loss, correct, seen = 0.0, 0, 0
    for images, targets in loader:
        images = images.to(ctx.device, non_blocking=True, memory_format=memory_format(ctx.device))
        targets = targets.to(ctx.device, non_blocking=True)
        with torch.autocast(ctx.device.type, dtype=ctx.amp_dtype, enabled=ctx.amp_dtype is not None):
            outputs = network(images)
            loss = ctx.loss_fn(outputs, targets)
        step_correct, step_seen = ctx.dist.all_sum([(outputs.argmax(1) == targets).sum().item(), len(targets)])
        total_loss += loss.item() * step_seen
        correct += int(step_correct)
        seen += int(step_seen)
    return total_loss / seen, correct / seen


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last speeds up convolutions on GPUs (tensor cores); CPUs gain nothing here."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def amp_dtype_for(amp: str, device: torch.device) -> torch.dtype | None:
    """float16 (with loss scaling) on a GPU, bfloat16 on a CPU when asked for, else None."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def _run_identity(args: argparse.Namespace, classes: list[str]) -> dict:
    """What a checkpoint must share with this run to be resumed by it."""
    return {"arch": args.arch, "image_size": args.image_size, "unfreeze": args.unfreeze,
            "optimizer": args.optimizer, "classes": classes, "epochs": args.epochs}


def _checkpoint_state(model, optimizer, scheduler, scaler, identity, epochs_done, history, partial_epoch=None):
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "identity": identity, "epochs_done": epochs_done, "history": history,
            "partial_epoch": partial_epoch}


def _read_checkpoint(checkpoint_dir: Path, identity: dict) -> dict | None:
    """The newest checkpoint's state, checked against this run's identity; None for a fresh start."""
    found = load_latest(checkpoint_dir)
    if found is None:
        return None
    state, path = found
    stored = state.get("identity") if isinstance(state, dict) else None
    if stored != identity:
        stored = stored if isinstance(stored, dict) else {}
        differ = sorted(k for k in identity.keys() | stored.keys() if stored.get(k) != identity.get(k))
        raise TrainerError(
            f"checkpoint {path} belongs to a different run ({', '.join(differ)} differ); "
            f"empty {checkpoint_dir} or pass another --checkpoint-dir")
    partial = state.get("partial_epoch")
    steps = f" and {partial['step']} step(s) of the next" if partial else ""
    print(f"resuming from {path}: {state['epochs_done']} of {identity['epochs']} epoch(s){steps} done", flush=True)
    return state


def _restore(state: dict | None, network, optimizer, scheduler, scaler):
    """(epochs done, history, progress in the next epoch or None) after loading `state`, or
    (0, [], None) for a fresh start."""
    if state is None:
        return 0, [], None
    network.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    return state["epochs_done"], list(state["history"]), state.get("partial_epoch")


def main(args: argparse.Namespace) -> int:
    dist = distributed.from_environment()
    try:
        with StopFlag() as stop:
            return run_job(args, stop, dist)
    finally:
        dist.close()


def run_job(args: argparse.Namespace, stop: StopFlag, dist: Distributed | None = None) -> int:
    """The whole job, as one process or as one rank of several (`dist`, default: this process's
    place from the environment); returns 0 when done or when stopped by SIGTERM after
    checkpointing. Rank 0 alone reads the checkpoint and checks the channels (the others get its
    results) and alone writes anything."""
    dist = dist or distributed.from_environment()
    device = dist.device
    amp_dtype = amp_dtype_for(args.amp, device)
    torch.manual_seed(args.seed)  # the starting weights; the data's randomness is EpochBatches'

    def check_outputs_and_data():
        _prepare_output_dirs(args)
        return load_splits(args.train, args.valid, args.test)

    train_split, valid_split, test_split = dist.run_on_main(check_outputs_and_data)
    classes = train_split.classes
    say = print if dist.is_main else (lambda *a, **k: None)
    say(f"data: {len(classes)} classes; train {len(train_split.samples)}, valid {len(valid_split.samples)}, "
        f"test {len(test_split.samples) if test_split else 'none'} images; device {device}, "
        f"amp {amp_dtype or 'off'}; {dist.world_size} process(es), global batch {args.batch_size}", flush=True)
    if test_split is None:
        say("warning: no test channel: test metrics are not reported", file=sys.stderr, flush=True)
    loader_args = dict(batch_size=args.batch_size, num_workers=args.num_workers, device=device, dist=dist)
    train_loader = make_loader(train_split, train_transform(args.image_size), train=True, seed=args.seed,
                               **loader_args)
    valid_loader = make_loader(valid_split, eval_transform(args.image_size), train=False, **loader_args)

    network = build_model(args.arch, len(classes), args.pretrained, args.unfreeze)
    network = network.to(device, memory_format=memory_format(device))
    # A module, not F.cross_entropy: the debugger hook records its output.
    loss_fn = distributed.GlobalBatchCrossEntropy()
    optimizer = build_optimizer(args.optimizer, network, args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    identity = _run_identity(args, classes)
    checkpoint_dir = Path(args.checkpoint_dir)
    state = dist.run_on_main(lambda: _read_checkpoint(checkpoint_dir, identity))
    epochs_done, history, partial = _restore(state, network, optimizer, scheduler, scaler)
    del state

    # The trial lives beside the checkpoints, which a spot restart restores, and grows across resumes.
    instrumentation = Instrumentation(args.debugger if dist.is_main else "off", Path(args.output_data_dir),
                                      trial_dir=checkpoint_dir / TRIAL_DIR, save_interval=args.save_interval,
                                      profile_steps=args.profile_steps, rule_params=args.rule_params)
    instrumentation.attach(network, loss_fn, resume=epochs_done > 0 or partial is not None)
    ctx = TrainingContext(dist.wrap(network), loss_fn, optimizer, scaler, amp_dtype,
                          instrumentation, stop, dist)

    def checkpoint(epochs: int, progress: dict | None = None) -> Path | None:
        if not dist.is_main:
            return None
        return save_checkpoint(checkpoint_dir, epochs, _checkpoint_state(
            network, optimizer, scheduler, scaler, identity, epochs, history, progress))

    for epoch in range(epochs_done + 1, args.epochs + 1):
        started = time.perf_counter()
        progress, finished = train_one_epoch(ctx, train_loader, epoch,
                                             resume_at=partial if epoch == epochs_done + 1 else None)
        if not finished:
            # The partial epoch's steps are kept; a rerun trains the rest of this epoch.
            path = checkpoint(epoch - 1, progress)
            say(f"stopped by SIGTERM in epoch {epoch} after step {progress['step']}; checkpoint {path} "
                "written, rerun to resume", flush=True)
            return 0
        train_loss = progress["loss_sum"] / max(progress["seen"], 1)
        train_acc = progress["correct"] / max(progress["seen"], 1)
        valid_loss, valid_acc = evaluate(ctx, valid_loader)
        scheduler.step()
        history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                        "valid_loss": valid_loss, "valid_acc": valid_acc,
                        "seconds": time.perf_counter() - started})
        say(format_epoch_line(epoch, train_loss=train_loss, train_acc=train_acc,
                              valid_loss=valid_loss, valid_acc=valid_acc), flush=True)
        checkpoint(epoch)
        if dist.any(stop.requested) and epoch < args.epochs:
            say(f"stopped by SIGTERM after epoch {epoch}; rerun to resume", flush=True)
            return 0

    # The test split must not enter the judged trial: recording stops first.
    instrumentation.stop_recording()
    if test_split is not None:
        test_loader = make_loader(test_split, eval_transform(args.image_size), train=False, **loader_args)
        test_loss, test_acc = evaluate(ctx, test_loader)
        say(format_metric_line(test_loss=test_loss, test_acc=test_acc), flush=True)
    if not dist.is_main:
        return 0
    instrumentation.finish(history)
    served = "none" if args.optimize == "none" else optimize.for_serving(args, network, len(classes), train_split, test_split)
    write_model_dir(Path(args.model_dir), network, classes, args.arch, args.image_size, optimize=served)
    if test_split is not None:  # one pass over the whole split (rank 0's alone) feeds both reports
        whole_test = make_loader(test_split, eval_transform(args.image_size), train=False, batch_size=args.batch_size,
                                 num_workers=args.num_workers, device=device)
        answers = predictions(network, whole_test, device)
        # The drift report's reference (docs/monitoring.md).
        write_baseline(Path(args.model_dir), classes, answers)
        # The model package's evidence: per-class precision and recall, the confusion matrix.
        write_evaluation(Path(args.model_dir), evaluation(classes, answers), args.evaluation_uri)
        if args.evaluation_uri:
            print(f"test evaluation written to {args.evaluation_uri}", flush=True)
    print(f"model written to {args.model_dir}", flush=True)
    return 0


def cli(argv: list[str] | None = None) -> int:
    """Entry point: a TrainerError becomes `error: ...` on stderr and exit status 2 (printed once:
    by the rank that found it)."""
    try:
        return main(parse_args(argv))
    except TrainerError as err:
        if not isinstance(err, distributed.MainRankError):
            print(f"error: {err}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
