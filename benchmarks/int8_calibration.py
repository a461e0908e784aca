"""Which static int8 settings keep a trained network closest to fp32, on this CPU, in one run.

For each backbone it trains a network to convergence with the real trainer (training/train.py,
--pretrained none: no ImageNet weights offline) on the demo set, exports it as the trainer does,
and quantizes that graph several ways with ONNX Runtime; each variant is judged as the trainer
judges the forward it ships (training/optimize.py compare: top-1 and top-1 agreement with fp32) on
the demo test split and on a held-out set of new views (seed 1). The variants:
  shipped         what training/optimize.py quantize_int8 ships (the final Linear stays fp32)
  int8-logits     the same with the final Linear quantized too (int8 logits)
  fp32-stem       the shipped one with the first convolution in fp32 as well
  entropy         the shipped one with entropy calibration instead of MinMax
  percentile      the shipped one with percentile (99.999) calibration
  all-train       the shipped one calibrated on every training image, not 256

    python benchmarks/int8_calibration.py --archs resnet50,resnet18
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from training.optimize import SHIPPED_INT8, Int8Settings  # noqa: E402

#: Each variant is the trainer's own quantize_int8 with one setting changed.
VARIANTS = {
    "shipped": SHIPPED_INT8,
    "int8-logits": Int8Settings(logits_fp32=False),
    "fp32-stem": Int8Settings(stem_fp32=True),
    "entropy": Int8Settings(method="Entropy"),
    "percentile": Int8Settings(method="Percentile"),
    "all-train": Int8Settings(images=10 ** 6),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="resnet50", help="comma-separated backbones")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--per-class", type=int, default=100, help="demo images per class (and held-out views)")
    p.add_argument("--train-size", type=int, default=32, help="image size the networks train and are tested at")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    args.archs = [a for a in args.archs.split(",") if a]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from benchmarks import backbones
    from training import optimize
    from training.data import scan_split

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    training_args = backbones.parse_args(["--epochs", str(args.epochs), "--train-size", str(args.train_size)])
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        splits = backbones.make_datasets(root / "data", args.per_class, ["demo", "heldout"])
        tests = {name: scan_split("test", path / "test") for name, path in splits.items()}
        for arch in args.archs:
            print(f"[{time.perf_counter() - started:.0f} s] training {arch}", flush=True)
            model_dir = backbones.train(arch, splits["demo"], root / "jobs" / arch, training_args)
            network, meta = backbones.fp32_network(model_dir)
            graph = root / f"{arch}.onnx"
            optimize.export_onnx(optimize.cpu_copy(network, arch, meta["num_classes"]), args.train_size, graph)
            train_split = scan_split("train", splits["demo"] / "train")
            for variant, settings in VARIANTS.items():
                target = root / f"{arch}-{variant}.onnx"
                optimize.quantize_int8(graph, target, train_split, args.train_size, settings)
                found = {}
                for name, test in tests.items():
                    c = optimize.compare(network, arch, meta["num_classes"], target, test, args.train_size, 32)
                    found[name] = {"images": c.images, "fp32": c.fp32_acc, "int8": c.optimized_acc, "agreement": c.agreement}
                results.setdefault(arch, {})[variant] = found
                print(f"[{time.perf_counter() - started:.0f} s] {arch} {variant}: {json.dumps(found)}", flush=True)
    print(report(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def report(results: dict) -> str:
    lines = ["| backbone | int8 variant | demo test: top-1 fp32 / int8 (agreement) | held-out: top-1 fp32 / int8 (agreement) |",
             "|---|---|---|---|"]
    for arch, variants in results.items():
        for variant, found in variants.items():
            cells = [f"{f['fp32']:.3f} / {f['int8']:.3f} ({f['agreement']:.3f})" for f in found.values()]
            lines.append(f"| {arch} | {variant} | {' | '.join(cells)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
