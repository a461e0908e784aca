"""The optimized CPU forward (endpoint.optimize): produced by the real trainer after its test
evaluation, saved in the model dir beside the fp32 weights, judged against fp32 there (kept, or the
model dir falls back to fp32 and says why), loaded by model_fn for the handlers, and served from its
model.tar.gz by the real Ray Serve container (one trained job and one container for the module)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from imgclf_serving import inference, optimized_forward
from imgclf_serving.architecture import build_classifier
from imgclf_serving.errors import ModelFileError
from training import optimize
from training.data import scan_split
from training.metrics import OPTIMIZED_METRICS, metric_definitions, parse_metrics

TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "training" / "train.py"
ARCH = "resnet18"


def _train(splits: Path, job: Path, channels: tuple[str, ...], *flags: str) -> subprocess.CompletedProcess:
    """One real training job with --optimize int8, run as the toolkit runs train.py."""
    command = [sys.executable, str(TRAIN_SCRIPT), *(f"--{s}={splits / s}" for s in channels),
               f"--model-dir={job / 'model'}", "--arch", ARCH, "--optimize", "int8", "--image-size", "32",
               "--pretrained", "none", "--unfreeze", "all", "--lr", "0.01", "--batch-size", "32", "--num-workers", "0",
               "--debugger", "off", *flags]
    # As a job's process starts: the trainer selects protobuf's implementation itself (with the
    # debugger on; here it is off, so ONNX gets protobuf's fast one, tests/conftest.py aside).
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_") and k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=job, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def int8_job(demo_splits: Path, tmp_path_factory: pytest.TempPathFactory):
    """(model dir, the trainer's stdout) of a job whose int8 forward is kept: limits that any
    forward meets (a 2-epoch network's int8 may lose more than the default half point)."""
    job = tmp_path_factory.mktemp("int8-job")
    result = _train(demo_splits, job, ("train", "valid", "test"), "--epochs", "2",
                    "--max-optimized-accuracy-drop", "1", "--min-optimized-agreement", "0")
    return job / "model", result.stdout


@pytest.fixture(scope="module")
def served(int8_job):
    return inference.model_fn(str(int8_job[0]))


def _test_images(splits: Path) -> list[tuple[bytes, str]]:
    return [(path.read_bytes(), path.parent.name) for path in sorted((splits / "test").rglob("*.jpg"))]


def test_the_trainer_saves_the_int8_forward_beside_the_fp32_weights(int8_job):
    model_dir, _ = int8_job
    assert {"model.pth", "model.onnx", "model-meta.json"} <= {p.name for p in model_dir.iterdir()}
    assert json.loads((model_dir / "model-meta.json").read_text())["optimize"] == "int8"


def test_the_model_dir_ships_onnx_runtime_so_a_cold_start_installs_nothing(int8_job):
    """ONNX Runtime is unpacked in code/, which both containers put on PYTHONPATH: requirements.txt
    stays empty, and a fresh interpreter with only that PYTHONPATH imports the shipped copy (the
    release the trainer measured with) and runs model.onnx with it."""
    from importlib.metadata import version

    model_dir, log = int8_job
    code = model_dir / "code"
    lines = [line for line in (code / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert lines == []
    assert f"onnxruntime {version('onnxruntime')} for Python {sys.version_info.major}.{sys.version_info.minor} shipped in code/" in log
    probe = ("import sys, numpy, onnxruntime\n"
             "session = onnxruntime.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
             "logits = session.run(None, {'images': numpy.zeros((1, 3, 32, 32), numpy.float32)})[0]\n"
             "print(onnxruntime.__file__, onnxruntime.__version__, logits.shape)")
    env = {**os.environ, "PYTHONPATH": str(code)}
    result = subprocess.run([sys.executable, "-c", probe, str(model_dir / "model.onnx")], capture_output=True,
                            text=True, env=env, cwd=model_dir.parent, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(code / "onnxruntime" / "__init__.py"), version("onnxruntime"), "(1,", "4)"]


def test_int8_weights_make_the_model_smaller(int8_job):
    model_dir, _ = int8_job
    assert (model_dir / "model.onnx").stat().st_size < 0.4 * (model_dir / "model.pth").stat().st_size


def test_the_int8_logits_come_from_an_fp32_linear_and_the_rest_is_quantized(int8_job):
    """quantize_int8 keeps the classifier's final Linear in fp32: rounding the logits to 8 bits
    flips close top-1 calls (benchmarks/README.md: int8 variants)."""
    import onnx
    from onnx import TensorProto

    graph = onnx.load(str(int8_job[0] / "model.onnx")).graph
    producers = {output: node for node in graph.node for output in node.output}
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    last = producers[graph.output[0].name]
    assert last.op_type == "Gemm" and initializers[last.input[1]].data_type == TensorProto.FLOAT
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert convs and all(producers[node.input[1]].op_type == "DequantizeLinear" for node in convs)
    assert initializers[producers[convs[0].input[1]].input[0]].data_type == TensorProto.INT8


def test_a_linear_exported_as_matmul_and_bias_add_stays_fp32_whole():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((8, 3), np.float32), "weight")
    bias = numpy_helper.from_array(np.zeros(3, np.float32), "bias")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["features"], name="relu"),
         helper.make_node("MatMul", ["features", "weight"], ["product"], name="matmul"),
         helper.make_node("Add", ["product", "bias"], ["logits"], name="add")],
        "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], [weight, bias])
    assert sorted(optimize.logit_nodes(graph)) == ["add", "matmul"]


def test_the_trainer_prints_the_comparison_as_metric_lines_the_requests_regexes_read(int8_job):
    _, log = int8_job
    found = parse_metrics(log, metric_definitions())
    assert {name: len(found.get(name, [])) for name in OPTIMIZED_METRICS} == {name: 1 for name in OPTIMIZED_METRICS}
    assert 0 <= found["optimized_agreement"][0] <= 1 and 0 <= found["optimized_test_acc"][0] <= 1


def test_model_fn_serves_the_onnx_forward_on_a_cpu(served):
    assert isinstance(served.network, optimized_forward.OnnxForward)
    assert served.meta["optimize"] == "int8"


def test_the_printed_agreement_is_what_the_handlers_serve(int8_job, served, demo_splits: Path):
    """Through input_fn/predict_fn, the int8 forward agrees with the fp32 network on exactly the
    share of test images the trainer printed for the gate."""
    model_dir, log = int8_job
    fp32_dir = model_dir.parent / "fp32-model"
    shutil.copytree(model_dir, fp32_dir)
    meta = json.loads((fp32_dir / "model-meta.json").read_text())
    (fp32_dir / "model-meta.json").write_text(json.dumps({**meta, "optimize": "none"}))
    fp32 = inference.model_fn(str(fp32_dir))
    assert isinstance(fp32.network, torch.nn.Module)
    images = _test_images(demo_splits)
    agree = 0
    for body, _ in images:
        image = inference.input_fn(body, "image/jpeg")
        agree += int(inference.predict_fn(image, served).probabilities.argmax() ==
                     inference.predict_fn(image, fp32).probabilities.argmax())
    printed = parse_metrics(log, metric_definitions())["optimized_agreement"][0]
    assert agree / len(images) == pytest.approx(printed, abs=1e-6)


def test_the_handlers_answer_json_labels_from_the_int8_forward(served, demo_splits: Path):
    body, _ = _test_images(demo_splits)[0]
    answer, content_type = inference.output_fn(inference.predict_fn(inference.input_fn(body, "image/jpeg"), served), None)
    labels = {p["label"] for p in json.loads(answer)["predictions"]}
    assert content_type == "application/json" and labels <= set(served.classes)


def test_the_graph_forward_computes_what_the_fp32_network_computes(int8_job, tmp_path):
    """`graph` is the fp32 network as ONNX: its logits equal PyTorch's to float rounding."""
    model_dir, _ = int8_job
    network = build_classifier(ARCH, 4)
    network.load_state_dict(torch.load(model_dir / "model.pth", weights_only=True))
    path = optimize.produce(network, "graph", tmp_path, ARCH, 4, 32, calibration=None)
    forward = optimized_forward.load(path, threads=1)
    batch = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        expected = network.eval()(batch)
    assert torch.allclose(forward(batch), expected, atol=1e-4, rtol=1e-4)


def test_the_trainer_reports_that_the_int8_forward_ships(int8_job):
    _, log = int8_job
    assert parse_metrics(log, metric_definitions())["optimized_kept"] == [1.0]
    assert "not shipped" not in log


def _judge(int8_job, demo_splits: Path, tmp_path: Path, capsys, drop: float, agreement: float) -> tuple[str, Path, str]:
    """training/optimize.judge on a copy of the kept job's model dir with these limits: (the forward
    that serves, the model dir, what it printed)."""
    model_dir = tmp_path / "model"
    shutil.copytree(int8_job[0], model_dir)
    network = build_classifier(ARCH, 4)
    network.load_state_dict(torch.load(model_dir / "model.pth", weights_only=True))
    args = argparse.Namespace(optimize="int8", model_dir=str(model_dir), arch=ARCH, image_size=32, batch_size=32,
                              max_optimized_accuracy_drop=drop, min_optimized_agreement=agreement)
    capsys.readouterr()
    served = optimize.judge(args, network, 4, scan_split("test", demo_splits / "test"))
    return served, model_dir, capsys.readouterr().out


def _printed(log: str) -> dict[str, float]:
    return {name: values[-1] for name, values in parse_metrics(log, metric_definitions()).items()}


def test_an_int8_forward_at_both_limits_is_kept(int8_job, demo_splits: Path, tmp_path, capsys):
    printed = _printed(int8_job[1])  # to the printed precision (6 decimals)
    served, model_dir, out = _judge(int8_job, demo_splits, tmp_path, capsys,
                                    printed["optimized_acc_drop"] + 1e-6, printed["optimized_agreement"] - 1e-6)
    assert (served, (model_dir / "model.onnx").is_file(), _printed(out)["optimized_kept"]) == ("int8", True, 1.0)


def test_an_int8_forward_that_agrees_less_than_required_falls_back_to_fp32_and_says_why(
        int8_job, demo_splits: Path, tmp_path, capsys):
    agreement = _printed(int8_job[1])["optimized_agreement"]
    served, model_dir, out = _judge(int8_job, demo_splits, tmp_path, capsys, 1.0, agreement + 0.001)
    assert (served, (model_dir / "model.onnx").exists(), _printed(out)["optimized_kept"]) == ("none", False, 0.0)
    assert not list((model_dir / "code").glob("onnxruntime*"))  # nor the runtime it would have needed
    line = next(line for line in out.splitlines() if "not shipped" in line)
    assert line.startswith("optimized forward (int8) not shipped: the int8 forward agrees with fp32 on ")
    assert line.endswith(f" of test images, fewer than the required {agreement + 0.001}; the model serves the fp32 network")


def test_an_int8_forward_that_loses_more_than_the_margin_falls_back_to_fp32(int8_job, demo_splits: Path, tmp_path, capsys):
    drop = _printed(int8_job[1])["optimized_acc_drop"]
    served, _, out = _judge(int8_job, demo_splits, tmp_path, capsys, drop - 0.001, 0.0)
    assert served == "none"
    assert "not shipped: the int8 forward loses " in out
    assert f"of test top-1 to fp32, more than the allowed {drop - 0.001}; the model serves the fp32 network" in out


def test_a_job_that_cannot_install_the_exporter_serves_fp32_and_says_why(demo_splits: Path, tmp_path, monkeypatch, capsys):
    """As a job without internet access whose image lacks them: pip fails, the job goes on with fp32."""
    import importlib.util

    missing = tmp_path / "requirements-optimize.txt"
    missing.write_text("onnx==0.0.0\n")  # no such release: pip fails as it would without an index
    monkeypatch.setattr(optimize, "EXPORT_REQUIREMENTS", missing)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None)  # as if not installed
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    args = argparse.Namespace(optimize="int8", model_dir=str(tmp_path / "model"), arch=ARCH, image_size=32, batch_size=32,
                              max_optimized_accuracy_drop=0.005, min_optimized_agreement=0.98, serving_python=None)
    served = optimize.for_serving(args, build_classifier(ARCH, 4), 4, scan_split("train", demo_splits / "train"),
                                  scan_split("test", demo_splits / "test"))
    out = capsys.readouterr().out
    assert served == "none" and not (tmp_path / "model" / "model.onnx").exists()
    assert "optimized forward (int8) not shipped: could not install the ONNX exporter and runtime (" in out
    assert "a job without internet access needs a training image that has requirements-optimize.txt" in out


def _wheel(folder: Path, python: str) -> Path:
    """A real wheel of a stand-in `onnxruntime` package at this environment's release, tagged for
    `python` on the serving platform: what `pip download` fetches for another Python, offline."""
    import zipfile
    from importlib.metadata import version

    release, tag = version("onnxruntime"), "cp" + python.replace(".", "")
    info = f"onnxruntime-{release}.dist-info"
    files = {"onnxruntime/__init__.py": f"__version__ = {release!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: onnxruntime\nVersion: {release}\n",
             f"{info}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}-{tag}-{optimize.SERVING_PLATFORM}\n",
             "onnxruntime-%s.data/scripts/tool" % release: "#!/bin/sh\n"}
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"onnxruntime-{release}-{tag}-{tag}-{optimize.SERVING_PLATFORM}.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def test_for_another_serving_python_the_trainer_unpacks_that_pythons_wheel_into_code(tmp_path, monkeypatch, capsys):
    """The serving image's Python differs from the job's: `pip download` fetches the wheel for it
    (here from a local wheelhouse, as $IMGCLF_WHEELHOUSE names one) and its package and dist-info
    land in code/, its .data folder (scripts) left out."""
    from importlib.metadata import version

    _wheel(tmp_path / "wheels", "3.13")
    monkeypatch.setenv(optimize.WHEELHOUSE_ENV, str(tmp_path / "wheels"))
    optimize.ship_runtime(tmp_path / "code", "3.13")
    shipped = sorted(p.name for p in (tmp_path / "code").iterdir())
    assert shipped == ["onnxruntime", f"onnxruntime-{version('onnxruntime')}.dist-info"]
    assert (tmp_path / "code" / "onnxruntime" / "__init__.py").read_text() == f"__version__ = {version('onnxruntime')!r}\n"
    assert "for Python 3.13 shipped in code/" in capsys.readouterr().out


def test_a_job_that_cannot_get_the_serving_wheel_serves_fp32_and_says_why(demo_splits: Path, tmp_path, monkeypatch, capsys):
    """No wheel for the serving Python (an isolated job, or none published): the forward is not
    shipped, nor any runtime, and the job goes on with fp32."""
    (tmp_path / "wheels").mkdir()
    monkeypatch.setenv(optimize.WHEELHOUSE_ENV, str(tmp_path / "wheels"))
    args = argparse.Namespace(optimize="graph", model_dir=str(tmp_path / "model"), arch=ARCH, image_size=32, batch_size=32,
                              max_optimized_accuracy_drop=0.005, min_optimized_agreement=0.98, serving_python="3.13")
    served = optimize.for_serving(args, build_classifier(ARCH, 4), 4, scan_split("train", demo_splits / "train"),
                                  scan_split("test", demo_splits / "test"))
    out = capsys.readouterr().out
    assert served == "none" and not (tmp_path / "model" / "model.onnx").exists()
    assert not list((tmp_path / "model" / "code").glob("onnxruntime*"))
    assert ("optimized forward (graph) not shipped: could not download the onnxruntime==" in out
            and "wheel for the serving container's Python 3.13 (manylinux_2_28_x86_64): " in out)


def test_without_a_test_split_the_trainer_ships_fp32_and_the_handlers_serve_it(demo_splits: Path, tmp_path):
    """No comparison is no verdict: nothing is exported, the model dir is the fp32 one, and the
    container installs no ONNX Runtime; the job still succeeds (the release is the gate's call)."""
    log = _train(demo_splits, tmp_path, ("train", "valid"), "--epochs", "1").stdout
    assert ("optimized forward (int8) not shipped: there is no test split to compare the int8 forward with fp32 on; "
            "the model serves the fp32 network") in log
    assert parse_metrics(log, metric_definitions())["optimized_kept"] == [0.0]
    model_dir = tmp_path / "model"
    assert not (model_dir / "model.onnx").exists()
    assert json.loads((model_dir / "model-meta.json").read_text())["optimize"] == "none"
    assert "onnxruntime" not in (model_dir / "code" / "requirements.txt").read_text()
    assert isinstance(inference.model_fn(str(model_dir)).network, torch.nn.Module)


@pytest.fixture
def broken(int8_job, tmp_path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(int8_job[0], target)
    return target


def test_a_missing_onnx_file_is_a_model_file_error(broken):
    (broken / "model.onnx").unlink()
    with pytest.raises(ModelFileError, match="model.onnx is missing from the model dir"):
        inference.model_fn(str(broken))


def test_a_corrupt_onnx_file_is_a_model_file_error(broken):
    (broken / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ModelFileError, match="model.onnx is not a loadable ONNX model"):
        inference.model_fn(str(broken))


def test_an_unknown_forward_in_the_metadata_is_a_model_file_error(broken):
    meta = json.loads((broken / "model-meta.json").read_text())
    (broken / "model-meta.json").write_text(json.dumps({**meta, "optimize": "fp16"}))
    with pytest.raises(ModelFileError, match="optimize must be one of none, graph, int8, got 'fp16'"):
        inference.model_fn(str(broken))


def test_a_container_without_onnxruntime_says_what_is_missing(broken, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(ModelFileError, match="model.onnx needs onnxruntime, which the trainer ships in the model dir's code/; it is neither"):
        inference.model_fn(str(broken))


# -- the int8 model.tar.gz in the real Ray Serve container ------------------------------------------


@pytest.fixture(scope="module")
def int8_container(int8_job, tmp_path_factory: pytest.TempPathFactory):
    """The int8 job's model.tar.gz, packed as SageMaker packs it and extracted as the container finds
    it in /opt/ml/model, served by Ray Serve as AWS's Ray Serve container runs it, with the
    CreateModel environment the default (serverless) config sends. Started once for the module."""
    from imgclf.local.deploy import model_environment
    from imgclf.local.endpoint import model_dir_from
    from imgclf.local.jobs import JobSpec, LocalTrainingJob
    from imgclf.local.ray_container import RayServeContainer
    from infra.config import load_config

    job_dir = int8_job[0].parent  # a job folder as the local engine lays it out: <job>/model
    spec = JobSpec(job_dir.name, {}, metric_definitions(), {}, "local", 900)  # pack_model reads only the folder
    model_tar = LocalTrainingJob(spec, job_dir).pack_model()
    root = tmp_path_factory.mktemp("int8-endpoint")
    model_dir = model_dir_from(model_tar, root / "opt" / "ml" / "model")
    with RayServeContainer(model_dir, model_environment(load_config(None), model_tar), root / "container.log") as container:
        yield container


def _onnxruntime_libraries(container) -> dict[str, set[str]]:
    """Each container process that has ONNX Runtime's extension module mapped (its command line's
    first word) -> the files it mapped: what the kernel says the replica imported."""
    from imgclf.local.sessions import members

    found: dict[str, set[str]] = {}
    for pid in members(container.sessions):
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:  # ended meanwhile
            continue
        paths = {line.split(maxsplit=5)[5] for line in maps.splitlines() if "onnxruntime_pybind11_state" in line}
        if paths:
            found.setdefault(command, set()).update(paths)
    return found


def test_the_replica_imports_the_onnx_runtime_shipped_in_code_not_the_environments(int8_container):
    code = int8_container.model_dir / "code"
    shipped = {str(path) for path in (code / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state*.so")}
    found = _onnxruntime_libraries(int8_container)
    assert len(shipped) == 1 and list(found.values()) == [shipped], found
    assert next(iter(found)).startswith("ray::ServeReplica"), found


def test_the_replica_answers_a_jpeg_as_the_int8_handlers_do(int8_container, served, demo_splits: Path):
    for body, _ in _test_images(demo_splits)[::4]:
        answer = int8_container.invoke(body, {"Content-Type": "image/jpeg"})
        assert (answer.status, answer.content_type) == (200, "application/json"), answer.body[:300]
        expected = json.loads(inference.output_fn(inference.predict_fn(inference.input_fn(body, "image/jpeg"), served), None)[0])
        got = json.loads(answer.body)
        assert {k: v for k, v in got.items() if k != "predictions"} == {k: v for k, v in expected.items() if k != "predictions"}
        assert [p["label"] for p in got["predictions"]] == [p["label"] for p in expected["predictions"]]
        assert [p["score"] for p in got["predictions"]] == pytest.approx([p["score"] for p in expected["predictions"]], abs=1e-4)


@pytest.mark.parametrize("name", ["truncated_jpeg", "random_bytes_as_jpeg"])
def test_a_corrupt_image_is_a_400_with_its_reason_from_the_int8_replica(int8_container, cases, name):
    case = cases[name]
    answer = int8_container.invoke(case.body, {"Content-Type": case.content_type})
    assert (answer.status, answer.content_type) == (400, "application/json"), answer.body[:300]
    body = json.loads(answer.body)
    assert set(body) == {"error"} and case.message in body["error"] and "Traceback" not in body["error"]
