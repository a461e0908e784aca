"""Backbones x serving forwards (none | graph | int8) on this CPU, in one run.

For each backbone of imgclf_serving/backbones.py and each forward it reports:
  accuracy   test top-1 of the fp32 network and of each optimized forward on two data sets, both
             trained here by the real trainer (training/train.py, --pretrained none: no ImageNet
             weights offline): the demo set (imgclf data demo) and scikit-learn's handwritten
             digits upscaled to RGB (1,797 images, 10 classes); and each forward's top-1 agreement
             with fp32 (training/optimize.py's compare, what the gate reads)
  forward    p50/p99 of the forward alone at batch 1 and --serve-size px
  handler    p50/p99 of input_fn + predict_fn + output_fn on a 600x400 JPEG (the model dir as
             model_fn loads it: the optimized forward through ONNX Runtime; the demo-trained
             network, its int8 calibrated at the training size: speed does not depend on the values)
  size       the weights file serving loads (model.pth or model.onnx)
  cost       compute per million predictions on a serverless endpoint of --memory-mb: handler p50
             x memory x AWS's price per GB-second (--price-per-gb-second)
  frontdoor  (for --frontdoor pairs) throughput and p50 through the local front door, endpoint and
             Ray Serve container at concurrency 1 and 16 (benchmarks/load_frontdoor.py's stack)
The forward and handler timings interleave every configuration within each iteration, so load
from other processes hits them alike; the ratios to resnet50/none (today's serving path) are the
figures to compare. Torch and ONNX Runtime use --threads intra-op threads.

    python benchmarks/backbones.py                       # everything (an hour or more on 2 cores)
    python benchmarks/backbones.py --archs resnet50,mobilenet_v3_large --epochs 2 --frontdoor none
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

FORWARDS = ("none", "graph", "int8")
BASELINE = ("resnet50", "none")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from imgclf_serving.backbones import ARCHITECTURES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default=",".join(ARCHITECTURES), help="comma-separated backbones")
    p.add_argument("--train-size", type=int, default=32, help="image size the networks train and are tested at")
    p.add_argument("--serve-size", type=int, default=224, help="image size of the latency measurements")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--per-class", type=int, default=200, help="demo images per class")
    p.add_argument("--iterations", type=int, default=30, help="timed forwards and handler calls per configuration")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (a 3 GB serverless endpoint has about 2 vCPUs)")
    p.add_argument("--memory-mb", type=int, default=3072, help="serverless memory the cost is computed for (the config's default)")
    p.add_argument("--price-per-gb-second", type=float, default=0.00002,
                   help="AWS's serverless inference price per GB-second (us-east-1: $0.0000200 per second for 1 GB)")
    p.add_argument("--frontdoor", default="resnet50:none,resnet50:int8",
                   help="arch:forward pairs to load through the local front door ('none' for no front door, 'all')")
    p.add_argument("--requests", type=int, default=40, help="front-door requests per concurrency")
    p.add_argument("--datasets", default="demo,heldout,digits",
                   help="comma-separated: demo, heldout (new demo views, seed 1, judged with the demo-trained network), digits")
    p.add_argument("--accuracy-only", action="store_true", help="train, export and compare; no timings, no front door")
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    args.archs = [a for a in args.archs.split(",") if a]
    args.datasets = [d for d in args.datasets.split(",") if d]
    if "demo" not in args.datasets or not set(args.datasets) <= {"demo", "heldout", "digits"}:
        p.error("--datasets takes demo (always: serving is timed on its model) and optionally heldout, digits")
    unknown = sorted(set(args.archs) - set(ARCHITECTURES))
    if unknown:
        p.error(f"unknown archs {unknown}; choose from {', '.join(ARCHITECTURES)}")
    if args.frontdoor == "all":
        args.frontdoor = [(a, f) for a in args.archs for f in FORWARDS]
    elif args.frontdoor == "none":
        args.frontdoor = []
    else:
        args.frontdoor = [tuple(pair.split(":")) for pair in args.frontdoor.split(",")]
    return args


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def make_datasets(root: Path, per_class: int, names: list[str]) -> dict[str, Path]:
    """The demo set and the digits set (if named), each split into train/ valid/ test/; and the
    held-out set (if named): other views of the demo's photos (seed 1), a test/ split only."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from imgclf.data_prepare import prepare
    from imgclf.demo_data import make_demo_dataset

    make_demo_dataset(root / "demo-images", per_class=per_class, image_size=64, seed=0)
    prepare(root / "demo-images", root / "demo", valid_fraction=0.1, test_fraction=0.2, seed=0)
    found = {"demo": root / "demo"}
    if "heldout" in names:
        make_demo_dataset(root / "heldout" / "test", per_class=per_class, image_size=64, seed=1)
        found["heldout"] = root / "heldout"
    if "digits" not in names:
        return found
    digits = load_digits()
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        gray = (pixels / 16 * 255).astype(np.uint8)
        folder = root / "digits-images" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gray).convert("RGB").resize((32, 32), Image.BICUBIC).save(folder / f"{i:04d}.png")
    prepare(root / "digits-images", root / "digits", valid_fraction=0.1, test_fraction=0.2, seed=0)
    return {**found, "digits": root / "digits"}


def train(arch: str, splits: Path, job: Path, args: argparse.Namespace) -> Path:
    """The real trainer as the toolkit runs it (a process of its own); returns the model dir."""
    command = [sys.executable, str(REPO_ROOT / "training" / "train.py"),
               *(f"--{s}={splits / s}" for s in ("train", "valid", "test")), f"--model-dir={job / 'model'}",
               "--arch", arch, "--epochs", str(args.epochs), "--image-size", str(args.train_size),
               "--pretrained", "none", "--unfreeze", "all", "--optimizer", "adamw", "--lr", "0.002",
               "--batch-size", "64", "--num-workers", "1", "--debugger", "off"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"training {arch} on {splits.name} failed:\n{result.stderr[-2000:]}")
    return job / "model"


def fp32_network(model_dir: Path):
    import torch

    from imgclf_serving.architecture import build_classifier

    meta = json.loads((model_dir / "model-meta.json").read_text())
    network = build_classifier(meta["arch"], meta["num_classes"])
    network.load_state_dict(torch.load(model_dir / "model.pth", weights_only=True))
    return network.eval(), meta


def optimized_files(network, arch: str, num_classes: int, image_size: int, calibration, target: Path) -> dict[str, Path]:
    """graph and int8 ONNX files of `network` (int8 calibrated at `image_size`). Unlike the trainer's
    export, height and width stay dynamic: the one graph is tested at the training size and timed at
    --serve-size, which halves this benchmark's exports (each takes minutes on 2 shared cores)."""
    import torch

    from imgclf_serving.optimized_forward import INPUT, OUTPUT
    from training import optimize

    target.mkdir(parents=True, exist_ok=True)
    graph = target / "graph.onnx"
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height", min=32), 3: torch.export.Dim("width", min=32)}
    program = torch.onnx.export(optimize.cpu_copy(network, arch, num_classes), (torch.zeros(2, 3, image_size, image_size),),
                                dynamo=True, input_names=[INPUT], output_names=[OUTPUT], dynamic_shapes=(dims,), verbose=False)
    program.save(str(graph))
    int8 = target / "int8.onnx"
    optimize.quantize_int8(graph, int8, calibration, image_size)
    return {"graph": graph, "int8": int8}


def accuracy(arch: str, model_dir: Path, splits: Path, workdir: Path, args: argparse.Namespace,
             files: dict[str, Path] | None = None) -> tuple[dict, dict]:
    """fp32 top-1 and, per optimized forward, its top-1 and agreement with fp32, on the test split;
    and the ONNX files (exported here, int8 calibrated on the training split, unless given)."""
    from training import optimize
    from training.data import scan_split

    network, meta = fp32_network(model_dir)
    test_split = scan_split("test", splits / "test")
    if files is None:
        files = optimized_files(network, arch, meta["num_classes"], args.train_size, scan_split("train", splits / "train"),
                                workdir)
    found = {}
    for forward, path in files.items():
        result = optimize.compare(network, arch, meta["num_classes"], path, test_split, args.train_size, 32)
        found["none"] = {"acc": result.fp32_acc, "agreement": 1.0}
        found[forward] = {"acc": result.optimized_acc, "agreement": result.agreement}
    return found, files


def serving_dirs(arch: str, trained: Path, files: dict[str, Path], workdir: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Model dirs at --serve-size, one per forward, as the trainer writes them (the demo-trained
    weights and their ONNX files)."""
    import shutil

    from training.model_dir import write_model_dir

    network, _ = fp32_network(trained)
    classes = json.loads((trained / "classes.json").read_text())
    dirs = {}
    for forward in FORWARDS:
        target = workdir / forward
        if forward != "none":
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(files[forward], target / "model.onnx")
        write_model_dir(target, network, classes, arch, args.serve_size, optimize=forward)
        dirs[forward] = target
    return dirs


def photo_body() -> bytes:
    from PIL import Image
    from skimage import data as skdata

    buffer = io.BytesIO()
    Image.fromarray(skdata.coffee()).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def latencies(models: dict, body: bytes, args: argparse.Namespace) -> dict:
    """Forward and handler ms per configuration, interleaved within each iteration."""
    import torch

    from imgclf_serving import inference

    image = inference.input_fn(body, "image/jpeg")
    batches = {key: model.transform(image).unsqueeze(0) for key, model in models.items()}
    timings = {key: {"forward": [], "handler": []} for key in models}

    def forward(key):
        with torch.inference_mode():
            models[key].network(batches[key])

    def handler(key):
        decoded = inference.input_fn(body, "image/jpeg")
        inference.output_fn(inference.predict_fn(decoded, models[key]), "application/json")

    for iteration in range(args.warmup + args.iterations):
        for key in models:
            for name, call in (("forward", forward), ("handler", handler)):
                started = time.perf_counter()
                call(key)
                if iteration >= args.warmup:
                    timings[key][name].append((time.perf_counter() - started) * 1000)
    return {key: {f"{name}_p{q}": round(percentile(values, q), 1) for name, values in found.items() for q in (50, 99)}
            for key, found in timings.items()}


def frontdoor_load(model_dir: Path, workdir: Path, requests: int) -> dict:
    """Throughput and p50 at concurrency 1 and 16 through the local front door (real Ray Serve)."""
    from benchmarks.load_frontdoor import Client, LocalStack, image_pool, run_load

    pool = [s for s in image_pool() if s.content_type == "image/jpeg"]
    with LocalStack("ray-serve", model_dir, workdir) as stack:
        client = Client(stack.url, None, 60)
        found = {"startup_s": stack.startup_seconds}
        for concurrency in (1, 16):
            result = run_load(client, pool, requests, concurrency, max_seconds=600)
            found[f"c{concurrency}_rps"] = result["throughput_rps"]
            found[f"c{concurrency}_p50_ms"] = result["p50_ms"]
            found[f"c{concurrency}_errors"] = result["errors"]
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from imgclf_serving import inference

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    results: dict = {"archs": {}, "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        args.splits = {k: str(v) for k, v in make_datasets(root / "data", args.per_class, args.datasets).items()}
        models = {}
        for arch in args.archs:
            entry = results["archs"][arch] = {"accuracy": {}}
            trained, files = {}, {}
            for name, splits in args.splits.items():
                if name == "heldout":  # the demo-trained network and its ONNX files on new views
                    trained[name], files[name] = trained["demo"], files["demo"]
                else:
                    print(f"[{time.perf_counter() - started:.0f} s] training {arch} on {name}", flush=True)
                    trained[name] = train(arch, Path(splits), root / "jobs" / arch / name, args)
                entry["accuracy"][name], files[name] = accuracy(arch, trained[name], Path(splits), root / "acc" / arch / name,
                                                                args, files.get(name))
                print(f"[{time.perf_counter() - started:.0f} s] {arch} on {name}: {json.dumps(entry['accuracy'][name])}",
                      flush=True)
            if args.accuracy_only:
                continue
            dirs = serving_dirs(arch, trained["demo"], files["demo"], root / "serve" / arch, args)
            entry["size_mb"] = {f: round((d / ("model.pth" if f == "none" else "model.onnx")).stat().st_size / 1e6, 1)
                                for f, d in dirs.items()}
            entry["dirs"] = {f: str(d) for f, d in dirs.items()}
            for forward, model_dir in dirs.items():
                models[(arch, forward)] = inference.model_fn(str(model_dir))
        print(f"[{time.perf_counter() - started:.0f} s] timing {len(models)} configurations", flush=True)
        timed = latencies(models, photo_body(), args) if models else {}
        for (arch, forward), found in timed.items():
            cost = found["handler_p50"] / 1000 * args.memory_mb / 1024 * args.price_per_gb_second * 1e6
            results["archs"][arch].setdefault("serving", {})[forward] = {**found, "cost_per_million_usd": round(cost, 2)}
        for arch, forward in args.frontdoor:
            print(f"[{time.perf_counter() - started:.0f} s] front door: {arch} {forward}", flush=True)
            model_dir = Path(results["archs"][arch]["dirs"][forward])
            results["archs"][arch]["serving"][forward]["frontdoor"] = frontdoor_load(model_dir, root / "door", args.requests)
    results["seconds"] = round(time.perf_counter() - started)
    results["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    print(report(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


def report(results: dict) -> str:
    """The README's tables: per backbone and forward, with ratios to resnet50/none."""
    base = results["archs"].get(BASELINE[0], {}).get("serving", {}).get(BASELINE[1])
    datasets = results["settings"]["datasets"]
    lines = ["| backbone | forward | forward p50 / p99 ms | handler p50 / p99 ms | handler speed-up vs resnet50 fp32 | size MB | "
             + "".join(f"{name} top-1 (agreement) | " for name in datasets) + "$ per 1M predictions | front door c=1 / c=16 req/s |",
             "|---|---|---|---|---|---|" + "---|" * len(datasets) + "---|---|"]
    for arch, entry in results["archs"].items():
        for forward in entry["accuracy"]["demo"]:
            serving = entry.get("serving", {}).get(forward)  # absent with --accuracy-only
            acc = []
            for name in datasets:
                a = entry["accuracy"][name][forward]
                drop = (entry["accuracy"][name]["none"]["acc"] - a["acc"]) * 100
                acc.append(f"{a['acc']:.3f}" + ("" if forward == "none" else f" ({a['agreement']:.3f}; {-drop:+.1f} pt)"))
            if serving is None:
                lines.append(f"| {arch} | {forward} | - | - | - | - | {' | '.join(acc)} | - | - |")
                continue
            ratio = f"{base['handler_p50'] / serving['handler_p50']:.2f}x" if base else "-"
            door = serving.get("frontdoor")
            door_text = f"{door['c1_rps']} / {door['c16_rps']}" if door else "-"
            lines.append(f"| {arch} | {forward} | {serving['forward_p50']} / {serving['forward_p99']} | "
                         f"{serving['handler_p50']} / {serving['handler_p99']} | {ratio} | {entry['size_mb'][forward]} | "
                         f"{' | '.join(acc)} | {serving['cost_per_million_usd']} | {door_text} |")
    lines.append(f"\n{results['seconds']} s in all; load average {results['load_average'][0]} before, "
                 f"{results['load_average'][1]} after")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
