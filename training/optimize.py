"""Produces the optimized CPU forward once after training, and measures it against the fp32 network.

Serverless endpoints run on CPUs and bill per millisecond, so the forward is the bill. The current
ecosystem path, with nothing to compile in the serving container:
- `graph`: torch.export captures the network and torch.onnx (the dynamo exporter; TorchScript
  and torch.jit are deprecated) writes it as ONNX, which ONNX Runtime fuses and runs.
- `int8`: that graph, pre-processed by ONNX Runtime's quantization tool (shape inference, graph
  fusions), then statically quantized: QDQ format, per-channel int8 weights, uint8 activations whose
  ranges come from images of the training split through the eval transform (what serving sees);
  the classifier's final Linear stays fp32, so the logits are not rounded.
Either is written to the model dir as model.onnx beside the fp32 weights; serving loads it through
imgclf_serving/optimized_forward.py, and so does `compare` here, so what is judged is what serves.
ONNX Runtime itself ships unpacked in the model dir's code/ (`ship_runtime`, for the serving image's
Python), so a serving cold start installs nothing.

The comparison runs the fp32 network and the optimized forward on the same test images on this
CPU: both top-1 accuracies and their top-1 agreement, printed as metric lines. A forward outside
the limits of training/optimized_checks.py, or one that cannot be produced or compared, is removed
and the model dir serves fp32: the checks refuse the optimized model, never the release.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import numpy as np
import torch
from torch import nn

from imgclf_serving import optimized_forward
from imgclf_serving.architecture import build_classifier
from imgclf_serving.preprocess import eval_transform
from training import optimized_checks
from training.data import ImageSplit, Split
from training.errors import TrainerError

#: The export's packages, installed only by a job that produces an optimized forward.
EXPORT_REQUIREMENTS = Path(__file__).with_name("requirements-optimize.txt")


@dataclass(frozen=True)
class Int8Settings:
    """How `quantize_int8` quantizes. The defaults are what the trainer ships; the alternatives are
    benchmarks/int8_calibration.py's comparison (benchmarks/README.md, int8 settings)."""

    #: Keep the classifier's final Linear in fp32 (quantizing it rounds the logits themselves).
    logits_fp32: bool = True
    #: Keep the first convolution in fp32 as well.
    stem_fp32: bool = False
    #: ONNX Runtime's calibration method: MinMax, Entropy or Percentile.
    method: str = "MinMax"
    #: Training images the activation ranges are calibrated on, spread evenly over the split.
    images: int = 256


#: What the retrain ships.
SHIPPED_INT8 = Int8Settings()
#: Images per calibration batch (ONNX Runtime's histogram methods need equal batches: one image).
CALIBRATION_BATCH = 16
#: The serving containers' platform (both are x86_64 with glibc 2.28 or newer; serverless is x86 only).
SERVING_PLATFORM = "manylinux_2_28_x86_64"
#: A folder of wheels that `pip download` takes the serving ONNX Runtime from, instead of PyPI.
WHEELHOUSE_ENV = "IMGCLF_WHEELHOUSE"


@dataclass(frozen=True)
class Comparison:
    """fp32 and optimized top-1 on the same test images, and how often their top-1 agree."""

    images: int
    fp32_acc: float
    optimized_acc: float
    agreement: float

    def metrics(self) -> dict[str, float]:
        """The metric lines the gate reads (training/metrics.py OPTIMIZED_METRICS)."""
        return {"optimized_test_acc": self.optimized_acc, "optimized_acc_drop": self.fp32_acc - self.optimized_acc,
                "optimized_agreement": self.agreement}


def cpu_copy(network: nn.Module, arch: str, num_classes: int) -> nn.Module:
    """A fresh fp32 CPU network with `network`'s weights: no DDP wrapper, no debugger hooks."""
    copy = build_classifier(arch, num_classes)
    copy.load_state_dict({k: v.detach().cpu().float() for k, v in network.state_dict().items()})
    return copy.eval()


def export_onnx(network: nn.Module, image_size: int, path: Path) -> None:
    """The fp32 network as ONNX, batch size dynamic."""
    example = torch.zeros(2, 3, image_size, image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on unused features, not on this graph
        try:
            program = torch.onnx.export(
                network, (example,), dynamo=True, input_names=[optimized_forward.INPUT],
                output_names=[optimized_forward.OUTPUT], dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
        except Exception as err:  # noqa: BLE001 - the exporter raises many types; the job needs one line
            raise TrainerError(f"cannot export the network to ONNX: {str(err).splitlines()[0]}") from None
    program.save(str(path))


def _calibration_batches(split: Split, image_size: int, images: int, batch: int):
    """Batches of `batch` of up to `images` training images, spread evenly, as ONNX Runtime's
    calibration reader hands them out."""
    from onnxruntime.quantization import CalibrationDataReader

    dataset = ImageSplit(split, eval_transform(image_size))
    count = min(images, len(dataset))
    indices = np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.starts = iter(range(0, count, batch))

        def get_next(self):
            start = next(self.starts, None)
            if start is None:
                return None
            found = [dataset[i][0] for i in indices[start:start + batch]]
            return {optimized_forward.INPUT: torch.stack(found).numpy()}

    return Reader()


def logit_nodes(graph) -> list[str]:
    """The nodes of an ONNX graph that compute its output from the last features: the classifier's
    final Linear (one Gemm, or a MatMul and its bias Add), found by walking back from the output."""
    producers = {output: node for node in graph.node for output in node.output}
    found, pending = [], [graph.output[0].name]
    while pending:
        node = producers.get(pending.pop())
        if node is None or node.op_type not in ("Gemm", "MatMul", "Add"):
            continue
        found.append(node.name)
        if node.op_type == "Add":  # the bias of a MatMul; the other input is an initializer
            pending.extend(node.input)
    return found


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: Split, image_size: int,
                  settings: Int8Settings = SHIPPED_INT8) -> None:
    """Static int8 quantization of the ONNX graph at `fp32_path` (QDQ, per-channel weights). By
    default the final Linear stays fp32: quantizing its output rounds the logits themselves, which
    flips close top-1 calls (measured: benchmarks/README.md, int8 settings), and it is one small
    matrix multiply."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    method = CalibrationMethod[settings.method]
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        # Symbolic shape inference is for dynamic shapes the exporter already resolved (and needs sympy).
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        fp32_nodes = (logit_nodes(graph) if settings.logits_fp32 else []) + (
            [node.name for node in graph.node if node.op_type == "Conv"][:1] if settings.stem_fp32 else [])
        batch = CALIBRATION_BATCH if method == CalibrationMethod.MinMax else 1
        quantize_static(
            str(prepared), str(int8_path), _calibration_batches(calibration, image_size, settings.images, batch),
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=method, nodes_to_exclude=fp32_nodes,
        )


def produce(network: nn.Module, kind: str, model_dir: Path, arch: str, num_classes: int, image_size: int,
            calibration: Split) -> Path:
    """Write `kind`'s forward (graph | int8) to model_dir/model.onnx; returns its path."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / optimized_forward.ONNX_FILE
    cpu_network = cpu_copy(network, arch, num_classes)
    if kind == "graph":
        export_onnx(cpu_network, image_size, path)
        return path
    with tempfile.TemporaryDirectory() as scratch:
        fp32_path = Path(scratch) / "fp32.onnx"
        export_onnx(cpu_network, image_size, fp32_path)
        quantize_int8(fp32_path, path, calibration, image_size)
    return path


@torch.inference_mode()
def compare(network: nn.Module, arch: str, num_classes: int, onnx_path: Path, test: Split, image_size: int,
            batch_size: int) -> Comparison:
    """Both forwards on every test image, on this CPU with torch's thread count."""
    fp32 = cpu_copy(network, arch, num_classes)
    optimized = optimized_forward.load(onnx_path, torch.get_num_threads())
    dataset = ImageSplit(test, eval_transform(image_size))
    correct_fp32 = correct_optimized = agree = 0
    for start in range(0, len(dataset), batch_size):
        images, targets = zip(*(dataset[i] for i in range(start, min(start + batch_size, len(dataset)))), strict=True)
        batch, targets = torch.stack(images), torch.tensor(targets)
        top_fp32, top_optimized = fp32(batch).argmax(1), optimized(batch).argmax(1)
        correct_fp32 += int((top_fp32 == targets).sum())
        correct_optimized += int((top_optimized == targets).sum())
        agree += int((top_fp32 == top_optimized).sum())
    n = len(dataset)
    return Comparison(images=n, fp32_acc=correct_fp32 / n, optimized_acc=correct_optimized / n, agreement=agree / n)


def ensure_export_tools() -> None:
    """Install the exporter and ONNX Runtime (requirements-optimize.txt) if they are missing: only a
    job that produces an optimized forward needs them, so the toolkit's requirements.txt leaves them
    out and tuning trials never install them."""
    if all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript", "onnxruntime")):
        return
    command = [sys.executable, "-m", "pip", "install", "--only-binary=:all:", "--disable-pip-version-check",
               "--no-input", "-r", str(EXPORT_REQUIREMENTS)]
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TrainerError(f"could not install the ONNX exporter and runtime ({last}); a job without internet "
                           f"access needs a training image that has {EXPORT_REQUIREMENTS.name}")
    importlib.invalidate_caches()


def _installed_runtime_matches(python: str) -> bool:
    """Whether this environment's ONNX Runtime is the wheel the serving container needs: built for
    `python` and a manylinux x86_64 platform the serving image runs."""
    wheel = distribution("onnxruntime").read_text("WHEEL") or ""
    tag = f"cp{python.replace('.', '')}-cp{python.replace('.', '')}-"
    return any(line.startswith("Tag: " + tag) and line.endswith("x86_64") and "manylinux" in line
               for line in wheel.splitlines())


def _copy_installed_runtime(code_dir: Path) -> None:
    """This environment's ONNX Runtime files (its package and dist-info, as its wheel laid them out)."""
    dist = distribution("onnxruntime")
    for file in dist.files or ():
        if file.parts[0] == ".." or "__pycache__" in file.parts:  # console scripts, bytecode
            continue
        target = code_dir / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dist.locate_file(file), target)


def _download_runtime(code_dir: Path, python: str) -> None:
    """`pip download` of ONNX Runtime's wheel for `python` on SERVING_PLATFORM (from $IMGCLF_WHEELHOUSE
    when set, else the index), unpacked into `code_dir`. Binary only: nothing is compiled."""
    release = version_of_runtime()
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "pip", "download", f"onnxruntime=={release}", "--only-binary=:all:",
                   "--no-deps", "--python-version", python, "--implementation", "cp", "--platform", SERVING_PLATFORM,
                   "--disable-pip-version-check", "--no-input", "-d", scratch]
        if os.environ.get(WHEELHOUSE_ENV):
            command += ["--no-index", "--find-links", os.environ[WHEELHOUSE_ENV]]
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wheels = sorted(Path(scratch).glob("onnxruntime-*.whl"))
        if result.returncode != 0 or not wheels:
            last = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise TrainerError(f"could not download the onnxruntime=={release} wheel for the serving container's "
                               f"Python {python} ({SERVING_PLATFORM}): {last}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            # A wheel's top level is site-packages; its .data folder (scripts, headers) is not needed to import.
            wheel.extractall(code_dir, [n for n in wheel.namelist() if not n.split("/")[0].endswith(".data")])


def version_of_runtime() -> str:
    """The ONNX Runtime release the trainer measured the forward with: the one serving gets."""
    return distribution("onnxruntime").version


def ship_runtime(code_dir: Path, python: str) -> None:
    """Put ONNX Runtime, unpacked, in the model dir's `code/`, which both serving containers put on
    PYTHONPATH: a cold start then imports it and installs nothing (its one run-time dependency,
    numpy, is in both images). This environment's copy when it is the serving Python's wheel (local
    runs), else the wheel for `python` from the index or $IMGCLF_WHEELHOUSE."""
    code_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if _installed_runtime_matches(python):
        _copy_installed_runtime(code_dir)
    else:
        _download_runtime(code_dir, python)
    size = sum(f.stat().st_size for f in (code_dir / "onnxruntime").rglob("*") if f.is_file())
    print(f"onnxruntime {version_of_runtime()} for Python {python} shipped in code/ ({size / 1e6:.0f} MB) "
          f"in {time.perf_counter() - started:.0f} s", flush=True)


def for_serving(args, network: nn.Module, num_classes: int, train: Split, test: Split | None) -> str:
    """The trainer's step: produce `args.optimize`'s forward in the model dir and judge it against
    fp32 on the test split. Returns the forward that serves: `args.optimize`, or "none" when it
    could not be produced or judged, or failed (the model dir then serves fp32; the release goes ahead)."""
    forward, path = args.optimize, Path(args.model_dir) / optimized_forward.ONNX_FILE
    if test is None:  # no verdict is never a pass, so nothing to produce
        return _fall_back(forward, path, optimized_checks.NO_TEST_SPLIT.format(forward=forward))
    started = time.perf_counter()
    try:
        ensure_export_tools()
        produce(network, forward, Path(args.model_dir), args.arch, num_classes, args.image_size, train)
        ship_runtime(Path(args.model_dir) / "code", args.serving_python or f"{sys.version_info.major}.{sys.version_info.minor}")
    except TrainerError as error:
        return _fall_back(forward, path, str(error))
    print(f"optimized forward ({forward}): {path.name} {path.stat().st_size / 1e6:.1f} MB "
          f"in {time.perf_counter() - started:.0f} s", flush=True)
    return judge(args, network, num_classes, test)


def judge(args, network: nn.Module, num_classes: int, test: Split) -> str:
    """Compare the model dir's model.onnx with fp32 on the test split, print the comparison as
    metric lines, and keep it only if it passes training/optimized_checks.py."""
    from training.metrics import format_metric_line

    forward, path = args.optimize, Path(args.model_dir) / optimized_forward.ONNX_FILE
    result = compare(network, args.arch, num_classes, path, test, args.image_size, args.batch_size)
    print(f"optimized forward ({forward}) on {result.images} test images: top-1 {result.optimized_acc:.4f}, "
          f"fp32 {result.fp32_acc:.4f} on this CPU, agreement {result.agreement:.4f}", flush=True)
    limits = {"max_drop": args.max_optimized_accuracy_drop, "min_agreement": args.min_optimized_agreement}
    reason = optimized_checks.refusal(forward, result.metrics(), limits)
    print(format_metric_line(**result.metrics(), **{optimized_checks.KEPT_METRIC: float(reason is None)}), flush=True)
    return forward if reason is None else _fall_back(forward, path, reason, record=False)


def _fall_back(forward: str, path: Path, reason: str, record: bool = True) -> str:
    """Serve fp32: no model.onnx and no ONNX Runtime in the model dir, the reason in the log, optimized_kept=0."""
    from training.metrics import format_metric_line

    path.unlink(missing_ok=True)
    for shipped in (path.parent / "code").glob("onnxruntime*"):  # the package and its dist-info
        shutil.rmtree(shipped, ignore_errors=True)
    print(optimized_checks.fallback_line(forward, reason), flush=True)
    if record:
        print(format_metric_line(**{optimized_checks.KEPT_METRIC: 0.0}), flush=True)
    return "none"
