"""What an explained request costs: the handlers (input_fn + predict_fn + output_fn) on one photo,
plain and with `explain=1` (Grad-CAM, imgclf_serving/explain.py), timed in turn within each
iteration so that load from other processes hits both alike. Prints p50/p99 of each, the ratio
explain/plain, and the answer's size (serverless endpoints answer at most 4 MB).

Then the cold-start cost that chose the implementation: the time to import each Grad-CAM option
in a fresh interpreter that has already imported torch and torchvision (what a serving replica
has loaded anyway): this project's hooks module, captum's LayerGradCam, and the grad-cam package.
Those not installed print as such (neither is a project dependency: `pip install captum
grad-cam` in a scratch venv to measure them).

The model is an untrained backbone (no weights are downloaded) written by the trainer's own writer.

    python benchmarks/explain_cost.py --arch resnet50 --image-size 224 --iterations 20
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
CLASSES = ["cat", "coffee", "rocket"]
#: Grad-CAM options: name -> (what it prints as, the import a replica would run).
OPTIONS = {
    "hooks": ("hooks (imgclf_serving.explain)", "import imgclf_serving.explain"),
    "captum": ("captum LayerGradCam", "from captum.attr import LayerGradCam"),
    "grad-cam": ("grad-cam package", "from pytorch_grad_cam import GradCAM"),
}
IMPORT_PROBE = """
import sys, time
import torch, torchvision  # a replica has these loaded already
started = time.perf_counter()
try:
    exec({statement!r})
except ImportError as error:
    print("missing", error.name)
    sys.exit(0)
print(time.perf_counter() - started)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224, help="the model's input size (model-meta image_size)")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--photo-side", type=int, default=600, help="the request photo's longer side in pixels")
    parser.add_argument("--import-rounds", type=int, default=3, help="fresh interpreters per Grad-CAM option")
    parser.add_argument("--imports", default=",".join(OPTIONS), help="the Grad-CAM options whose import to time")
    return parser.parse_args(argv)


def photo_jpeg(side: int) -> bytes:
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.chelsea())
    image = image.resize((side, round(side * image.height / image.width)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def build_model(root: Path, arch: str, image_size: int) -> Path:
    import torch

    from imgclf_serving.architecture import build_classifier
    from training.model_dir import write_model_dir

    torch.manual_seed(0)
    with mock.patch.dict(os.environ, {"TRAINING_JOB_NAME": "bench"}):
        write_model_dir(root, build_classifier(arch, len(CLASSES)), CLASSES, arch, image_size)
    return root


def handler_seconds(inference, model, body: bytes, headers: dict) -> tuple[float, int]:
    started = time.perf_counter()
    image = inference.input_fn(body, "image/jpeg")
    answer, _ = inference.output_fn(inference.predict_fn(image, model, headers), "application/json", headers)
    return time.perf_counter() - started, len(answer)


def import_seconds(statement: str, rounds: int) -> str:
    times = []
    for _ in range(rounds):
        done = subprocess.run([sys.executable, "-c", IMPORT_PROBE.format(statement=statement)], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            return f"failed: {done.stderr.strip().splitlines()[-1]}"
        if done.stdout.startswith("missing"):
            return f"not installed ({done.stdout.split()[1]})"
        times.append(float(done.stdout))
    return f"{1000 * statistics.median(times):.0f} ms (median of {rounds})"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from imgclf_serving import inference

    body = photo_jpeg(args.photo_side)
    explain = {inference.CUSTOM_ATTRIBUTES_HEADER: "explain=1"}
    with tempfile.TemporaryDirectory() as scratch:
        model = inference.model_fn(str(build_model(Path(scratch) / "model", args.arch, args.image_size)))
        timings: dict[str, list[float]] = {"plain": [], "explain": []}
        sizes = {}
        for iteration in range(args.warmup + args.iterations):
            for name, headers in (("plain", {}), ("explain", explain)):
                seconds, sizes[name] = handler_seconds(inference, model, body, headers)
                if iteration >= args.warmup:
                    timings[name].append(seconds)
    print(f"{args.arch} at {args.image_size} px, {len(body):,}-byte JPEG, {torch.get_num_threads()} threads, "
          f"{args.iterations} iterations")
    for name, values in timings.items():
        print(f"  {name}: p50 {1000 * statistics.median(values):8.1f} ms  p99 {1000 * percentile(values, 0.99):8.1f} ms  "
              f"answer {sizes[name]:,} bytes")
    print(f"explain/plain = {statistics.median(timings['explain']) / statistics.median(timings['plain']):.2f}")
    print(f"explained answer / serverless 4 MB = {sizes['explain'] / 4_000_000:.4f}")
    print("import time after torch + torchvision:")
    for option in args.imports.split(","):
        name, statement = OPTIONS[option]
        print(f"  {name}: {import_seconds(statement, args.import_rounds)}")
    print(json.dumps({"explain_over_plain": round(statistics.median(timings["explain"]) / statistics.median(timings["plain"]), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
