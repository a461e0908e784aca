"""The serving benchmarks run end to end and print their figures (tiny counts, a 32 px model), against
the session's local endpoint and Ray Serve container rather than a container of their own: their
own start-up path is `imgclf local serve`'s (tests/imgclf/test_local_serve.py)."""
from __future__ import annotations

import re
import subprocess
import sys

from model_dirs import REPO_ROOT


def run_script(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / name), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_serving_latency_prints_each_path_and_the_ratios(local_endpoint, model_dir):
    out = run_script("serving_latency.py", "--image-size", "32", "--iterations", "3", "--warmup", "1", "--photo-side", "96",
                     "--endpoint", local_endpoint.url, "--endpoint-name", local_endpoint.endpoint_name, "--model", str(model_dir))
    for path in ("forward", "handler", "endpoint", "frontdoor", "decode", "transform"):
        assert re.search(rf"^\s*{path}: p50 +[0-9.]+ ms +p99 +[0-9.]+ ms$", out, re.M), out
    for ratio in ("handler/forward", "endpoint/handler", "frontdoor/endpoint"):
        assert re.search(rf"^{ratio} += [0-9.]+", out, re.M), out


def test_load_frontdoor_prints_the_load_figures_and_a_time_bounded_breakdown(local_endpoint, model_dir):
    # 6 requests finish within 10 s even on a busy machine (1 s each was seen); 1,000 images timed
    # one at a time, through two HTTP hops each, do not on any machine
    out = run_script("load_frontdoor.py", "--requests", "6", "--sweep", "1,2", "--warmup", "1",
                     "--endpoint", local_endpoint.url, "--endpoint-name", local_endpoint.endpoint_name,
                     "--model", str(model_dir), "--breakdown", "--breakdown-rounds", "50", "--max-seconds", "10")
    for c in (1, 2):
        assert re.search(rf"^c= +{c} sent=6 in [0-9.]+ s: [0-9.]+ req/s, p50 [0-9.]+ ms, p95 [0-9.]+ ms, "
                         r"p99 [0-9.]+ ms, errors 0$", out, re.M), out
    assert re.search(r"^breakdown stopped by --max-seconds after \d+ image\(s\)$", out, re.M), out
    assert re.search(r"^ +frontdoor_overhead: -?[0-9.]+$", out, re.M), out


def test_backbones_prints_each_forwards_latency_size_accuracy_and_cost():
    """A smoke run (one small backbone, 40 demo images, one epoch, 32 px): the real trainer, export,
    quantization, comparison and handler timing, and the table rows."""
    out = run_script("backbones.py", "--archs", "resnet18", "--datasets", "demo", "--per-class", "10", "--epochs", "1",
                     "--train-size", "32", "--serve-size", "32", "--iterations", "2", "--warmup", "1", "--frontdoor", "none")
    compared = r"[0-9.]+ \([0-9.]+; [-+][0-9.]+ pt\)"  # top-1 (agreement with fp32; points vs fp32)
    for forward, accuracy in (("none", r"[0-9.]+"), ("graph", compared), ("int8", compared)):
        assert re.search(rf"^\| resnet18 \| {forward} \| [0-9.]+ / [0-9.]+ \| [0-9.]+ / [0-9.]+ \| - \| [0-9.]+ \| "
                         rf"{accuracy} \| [0-9.]+ \| - \|$", out, re.M), out


def test_int8_calibration_prints_every_variants_accuracy_and_agreement_on_both_sets():
    """A smoke run (ResNet-18, 40 demo images, one epoch): the real trainer, export, six quantizations
    and the trainer's comparison, one row per variant."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from int8_calibration import VARIANTS

    out = run_script("int8_calibration.py", "--archs", "resnet18", "--per-class", "10", "--epochs", "1")
    cell = r"[0-9.]+ / [0-9.]+ \([0-9.]+\)"  # fp32 top-1 / int8 top-1 (agreement)
    for variant in VARIANTS:
        assert re.search(rf"^\| resnet18 \| {variant} \| {cell} \| {cell} \|$", out, re.M), out
