"""Is training input-bound or compute-bound? Images/s of the trainer's DataLoader alone, of its
training step alone, and of both together, on the same ImageFolder data, printed as ratios.

    python benchmarks/train_throughput.py --image-size 64 --batch-size 16 --workers 2 --steps 20

- loader: batches from the training DataLoader (decode + augmentation + collate), nothing else.
- step:   the trainer's train_step on batches already on the device (forward, backward, update).
- both:   the real loop: next batch, copy to the device, train_step.
`both / min(loader, step)` near 1.0 means loading overlaps compute well; `loader / step` below 1.0
means the GPU (or CPU) waits for data: add workers. Without --data, the offline demo photos are
generated into a temporary folder. Runs on CPU and GPU (AMP and channels_last on a GPU by default).
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from imgclf_serving.backbones import UNFREEZE  # noqa: E402
from training.data import make_loader, scan_split, train_transform  # noqa: E402
from training.model import build_model, train_mode  # noqa: E402
from training.train import amp_dtype_for, memory_format, train_step  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, help="ImageFolder (class sub-folders); default: demo photos in a temp dir")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="timed batches per measurement")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median is reported")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches first (worker start, cuDNN autotune)")
    p.add_argument("--unfreeze", choices=UNFREEZE, default="last")
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto", help="auto: on with a GPU")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto", help="auto: on with a GPU")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _batches(loader, count: int):
    """`count` batches, starting new epochs of the loader as needed."""
    return itertools.islice(itertools.chain.from_iterable(itertools.repeat(loader)), count)


def _rate(images: int, seconds: float) -> float:
    return images / seconds if seconds > 0 else float("inf")


def measure(args: argparse.Namespace, data: Path) -> dict[str, float]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    fmt = memory_format(device) if args.channels_last == "auto" else \
        (torch.channels_last if args.channels_last == "on" else torch.contiguous_format)
    amp_dtype = amp_dtype_for(args.amp, device)
    split = scan_split("train", data)
    loader = make_loader(split, train_transform(args.image_size), args.batch_size, args.workers,
                         train=True, device=device)
    model = build_model("resnet50", len(split.classes), "none", args.unfreeze).to(device, memory_format=fmt)
    train_mode(model)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    def to_device(batch):
        images, targets = batch
        return images.to(device, non_blocking=True, memory_format=fmt), targets.to(device, non_blocking=True)

    def timed(run_batches) -> float:
        _sync(device)
        start = time.perf_counter()
        images = run_batches()
        _sync(device)
        return _rate(images, time.perf_counter() - start)

    for batch in _batches(loader, args.warmup):  # starts the workers, warms up the model
        train_step(model, loss_fn, optimizer, scaler, amp_dtype, *to_device(batch))

    def loader_only() -> int:
        return sum(len(targets) for _, targets in _batches(loader, args.steps))

    resident = [to_device(b) for b in _batches(loader, min(args.steps, 4))]

    def step_only() -> int:
        for images, targets in itertools.islice(itertools.cycle(resident), args.steps):
            train_step(model, loss_fn, optimizer, scaler, amp_dtype, images, targets)
        return args.steps * args.batch_size

    def both() -> int:
        seen = 0
        for batch in _batches(loader, args.steps):
            images, targets = to_device(batch)
            train_step(model, loss_fn, optimizer, scaler, amp_dtype, images, targets)
            seen += len(targets)
        return seen

    # Interleaved rounds and medians: a shared machine's load then hits all three alike.
    runs = {"loader": loader_only, "step": step_only, "both": both}
    samples = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            samples[name].append(timed(run))
    rates = {name: statistics.median(values) for name, values in samples.items()}
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"image {args.image_size} px, batch {args.batch_size}, workers {args.workers}, steps {args.steps}, "
          f"repeats {args.repeats}, unfreeze {args.unfreeze}, amp {amp_dtype or 'off'}, channels_last {fmt == torch.channels_last}")
    return rates


def report(rates: dict[str, float]) -> str:
    loader, step, both = rates["loader"], rates["step"], rates["both"]
    bound = "input-bound: add --workers" if loader < step else "compute-bound"
    return "\n".join([
        f"loader alone  {loader:10.1f} images/s",
        f"step alone    {step:10.1f} images/s",
        f"both          {both:10.1f} images/s",
        f"loader/step   {loader / step:10.2f}   ({bound})",
        f"both/step     {both / step:10.2f}   (share of the step's speed the full loop keeps)",
        f"both/min      {both / min(loader, step):10.2f}   (1.0 = loading fully overlaps compute)",
    ])


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data is not None:
        print(report(measure(args, args.data)))
        return 0
    from imgclf.demo_data import make_demo_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data = make_demo_dataset(Path(tmp) / "demo", per_class=max(32, args.batch_size * 2),
                                 image_size=max(64, args.image_size), seed=0)
        print(report(measure(args, data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
