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

VARIANTS = ("shipped", "int8-logits", "fp32-stem", "entropy", "percentile", "all-train")


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


def quantize(prepared: Path, target: Path, variant: str, train_split, size: int) -> None:
    """`prepared` (quant_pre_process's output) quantized as `variant` says."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from training import optimize

    graph = onnx.load(str(prepared)).graph
    first_conv = [node.name for node in graph.node if node.op_type == "Conv"][:1]
    exclude = {"int8-logits": [], "fp32-stem": optimize.logit_nodes(graph) + first_conv}.get(
        variant, optimize.logit_nodes(graph))
    method = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}.get(
        variant, CalibrationMethod.MinMax)
    images, batch = optimize.CALIBRATION_IMAGES, optimize.CALIBRATION_BATCH
    try:
        optimize.CALIBRATION_IMAGES = 10 ** 6 if variant == "all-train" else images
        # ONNX Runtime's histogram calibrators stack every batch's outputs: they need equal batches.
        optimize.CALIBRATION_BATCH = batch if method == CalibrationMethod.MinMax else 1
        quantize_static(str(prepared), str(target), optimize._calibration_batches(train_split, size),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=method, nodes_to_exclude=exclude)
    finally:
        optimize.CALIBRATION_IMAGES, optimize.CALIBRATION_BATCH = images, batch


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from onnxruntime.quantization.shape_inference import quant_pre_process

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
            graph, prepared = root / f"{arch}.onnx", root / f"{arch}-prepared.onnx"
            optimize.export_onnx(optimize.cpu_copy(network, arch, meta["num_classes"]), args.train_size, graph)
            quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
            train_split = scan_split("train", splits["demo"] / "train")
            for variant in VARIANTS:
                target = root / f"{arch}-{variant}.onnx"
                quantize(prepared, target, variant, train_split, args.train_size)
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
