"""What the portable smdebug hook costs per training step: the same steps with no hook, with the
hook as configured (losses every step, ReLU-input variances in the first 10 steps, gradients
and weights every `--save-interval`, each step flushed to disk as the trainer does), and with losses saved
only at the interval. Prints the medians and the ratios over no hook, measured in one run.

    python benchmarks/debug_hook_overhead.py --image-size 64 --batch-size 16 --steps 12
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from imgclf_serving.architecture import build_classifier  # noqa: E402
from training import debugger_collections  # noqa: E402
from training.debug_hook import create_hook, detach, flush, register  # noqa: E402


def median_step_ms(hook_mode: str, args: argparse.Namespace) -> float:
    """Median wall time of a forward + backward + AdamW step, after 2 warm-up steps."""
    torch.manual_seed(0)
    model, loss_fn = build_classifier("resnet50", 4), nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    hook = None
    if hook_mode != "off":
        saved = debugger_collections.LOSS_SAVE_INTERVAL
        if hook_mode == "losses-at-interval":
            debugger_collections.LOSS_SAVE_INTERVAL = args.save_interval
        try:
            hook = create_hook(Path(tempfile.mkdtemp()), args.save_interval)
        finally:
            debugger_collections.LOSS_SAVE_INTERVAL = saved
        register(hook, model, loss_fn)
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    targets = torch.randint(0, 4, (args.batch_size,))
    times = []
    for _ in range(args.steps + 2):
        started = time.perf_counter()
        loss = loss_fn(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if hook is not None:
            flush(hook)  # as the trainer does after every step (Instrumentation.record_step)
        times.append(time.perf_counter() - started)
    if hook is not None:
        detach(hook, model, loss_fn)
    return statistics.median(times[2:]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--save-interval", type=int, default=50)
    args = parser.parse_args()
    results = {mode: median_step_ms(mode, args) for mode in ("off", "as-configured", "losses-at-interval")}
    for mode, ms in results.items():
        print(f"{mode:>20}: median step {ms:8.1f} ms   x{ms / results['off']:.2f} of no hook")


if __name__ == "__main__":
    main()
