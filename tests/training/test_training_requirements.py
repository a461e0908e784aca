"""The trainer's requirements on the training image's Python: what the toolkit installs resolves from
wheels alone and leaves the image's torch alone, and smdebug, installed by the trainer without its
stale pins, imports, writes tensors and runs the portable rules there.

The image's Python comes from infra/images.py (3.12 for the default PyTorch 2.14 AL2023 image). These
tests reach PyPI: pip resolves and installs from it (marker `pypi`). The environment tests need that
Python on this machine (pyenv's, here and in CI).
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from debug_loop import load_split, train
from sagemaker_training.files import download_and_extract
from torch import nn

from infra.config import load_config
from infra.images import training_release
from infra.source_bundle import build_source_bundle
from training.smdebug_runtime import NO_DEPS_REQUIREMENTS

pytestmark = pytest.mark.pypi

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "training" / "requirements.txt"
EXPORT_REQUIREMENTS = REPO / "training" / "requirements-optimize.txt"
IMAGE_PYTHON = training_release(load_config()).support.python
#: Wheels for the oldest glibc manylinux covers (2.17), or for glibc 2.28 (onnx and onnxruntime publish
#: only those); the AL2023 images have glibc 2.34.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
#: What the image brings and no requirement may replace.
IMAGE_OWNED = {"torch", "torchvision", "torchaudio", "triton"}


def _dist_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheel_names(folder: Path) -> dict[str, Path]:
    """{distribution name: wheel} of the wheels pip put in `folder`."""
    return {_dist_name(wheel.name.split("-")[0]): wheel for wheel in folder.glob("*.whl")}


def _requirement_names(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {_dist_name(re.split(r"[<>=!~; \[]", line)[0]) for line in lines if line}


def _pip_download(dest: Path, *args: str) -> dict[str, Path]:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
         "--only-binary=:all:", "--python-version", IMAGE_PYTHON, *(f"--platform={p}" for p in PLATFORMS),
         "--implementation", "cp", "-d", str(dest), *args],
        capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return _wheel_names(dest)


def test_the_toolkit_requirements_resolve_from_wheels_for_the_image_python_without_torch(tmp_path):
    wheels = _pip_download(tmp_path, "-r", str(REQUIREMENTS))
    assert _requirement_names(REQUIREMENTS) <= wheels.keys()
    assert not {"onnx", "onnxscript", "onnxruntime"} & wheels.keys()  # only an optimizing job installs them
    assert not IMAGE_OWNED & wheels.keys()
    assert not [name for name in wheels if name.startswith("nvidia-")]


def test_the_export_requirements_resolve_from_wheels_beside_the_toolkit_requirements_without_torch(tmp_path):
    wheels = _pip_download(tmp_path, "-r", str(REQUIREMENTS), "-r", str(EXPORT_REQUIREMENTS))
    assert {"onnx", "onnxscript", "onnxruntime"} == _requirement_names(EXPORT_REQUIREMENTS)
    assert _requirement_names(EXPORT_REQUIREMENTS) <= wheels.keys()
    assert not IMAGE_OWNED & wheels.keys()
    assert not [name for name in wheels if name.startswith("nvidia-")]


def test_smdebug_is_a_pure_python_wheel_whose_real_dependencies_the_toolkit_requirements_name(tmp_path):
    wheels = _pip_download(tmp_path, "--no-deps", "-r", str(NO_DEPS_REQUIREMENTS))
    assert list(wheels) == ["smdebug"] and wheels["smdebug"].name.endswith("-none-any.whl")
    with zipfile.ZipFile(wheels["smdebug"]) as wheel:
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        declared = [line.split(":", 1)[1].strip() for line in wheel.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    # Its pins (pyinstrument==3.4.2, protobuf<=3.20.3) are dropped; each name it declares is still installed.
    assert {_dist_name(re.split(r"[<>=!~; (]", d)[0]) for d in declared} <= _requirement_names(REQUIREMENTS)


# ----- an environment of the image's Python, installed the way the toolkit and the trainer do -----

def _image_python() -> str | None:
    """An interpreter of IMAGE_PYTHON: on PATH, else pyenv's."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{IMAGE_PYTHON}"),
                  *sorted(glob.glob(str(pyenv / "versions" / f"{IMAGE_PYTHON}.*" / "bin" / f"python{IMAGE_PYTHON}")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == IMAGE_PYTHON:
            return candidate
    return None


#: Run in the environment with the bundle as the working directory, as the toolkit runs the trainer.
ENSURE_SMDEBUG = "from training.smdebug_runtime import ensure_smdebug; ensure_smdebug()"
PROBE = """
import json, sys, importlib.metadata as md
from training.smdebug_runtime import ensure_smdebug
ensure_smdebug()
import numpy as np
from google.protobuf.internal import api_implementation
import smdebug.profiler.python_profiler, smdebug.profiler.utils  # pyinstrument; distutils
from smdebug.core.modes import ModeKeys
from smdebug.core.writer import FileWriter
from smdebug.core.tfevent.event_file_reader import EventFileReader
with FileWriter(trial_dir=sys.argv[1], step=3, worker="worker_0") as writer:
    writer.write_tensor(tdata=np.arange(6, dtype=np.float32).reshape(2, 3), tname="w", mode=ModeKeys.TRAIN, mode_step=3)
(events,) = __import__("glob").glob(sys.argv[1] + "/events/*/*.tfevents")
read = [(name, step, value.tolist(), mode.name) for name, step, value, mode, _ in EventFileReader(events).read_tensors()]
print(json.dumps({"python": "%d.%d" % sys.version_info[:2], "protobuf": md.version("protobuf"),
                  "protobuf_implementation": api_implementation.Type(), "read": read,
                  "installed": sorted(d.metadata["Name"].lower() for d in md.distributions())}))
"""
RULES = """
import json, sys
from training.smdebug_runtime import ensure_smdebug
ensure_smdebug()
from training.portable_rules import evaluate_rules
print(json.dumps({trial: {r.rule: r.status for r in evaluate_rules(trial)} for trial in sys.argv[1:]}))
"""


class ImageEnv:
    def __init__(self, python: Path, code: Path, env: dict[str, str]) -> None:
        self.python, self.code, self.env = python, code, env
        self.offline_attempt: subprocess.CompletedProcess | None = None

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), *args], cwd=self.code, env={**self.env, **env},
                              capture_output=True, text=True, timeout=540)


@pytest.fixture(scope="module")
def image_env(tmp_path_factory: pytest.TempPathFactory) -> ImageEnv:
    """A venv of the image's Python, the source bundle extracted as the toolkit extracts it, and the
    toolkit's `pip install -r requirements.txt` run in it, wheels only (no compiler)."""
    interpreter = _image_python()
    if interpreter is None:
        pytest.skip(f"no Python {IMAGE_PYTHON} on this machine")
    root = tmp_path_factory.mktemp("image_python")
    code = root / "code"
    download_and_extract(str(build_source_bundle(root / "bundle")), str(code))
    subprocess.run([interpreter, "-m", "venv", str(root / "venv")], check=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION") and not k.startswith("PIP_")}
    image = ImageEnv(root / "venv" / "bin" / "python", code, {**env, "PYTHONPATH": str(code)})
    install = image.run("-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-compile",
                        "--only-binary=:all:", "-r", "requirements.txt")
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    # Before smdebug is there: the trainer's install step as a job without internet access runs it.
    image.offline_attempt = image.run("-c", ENSURE_SMDEBUG, PIP_NO_INDEX="1")
    return image


def test_without_an_index_the_trainer_says_it_could_not_install_smdebug(image_env):
    result = image_env.offline_attempt
    assert result.returncode != 0
    assert "TrainerError: could not install smdebug for the debugger (ERROR: No matching distribution found for " \
           "smdebug==1.0.34); a job without internet access" in result.stderr


@pytest.fixture(scope="module")
def probe(image_env, tmp_path_factory) -> dict:
    result = image_env.run("-c", PROBE, str(tmp_path_factory.mktemp("trial")))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_trainer_installs_smdebug_on_the_image_python_and_leaves_torch_to_the_image(probe):
    assert probe["python"] == IMAGE_PYTHON
    assert "smdebug" in probe["installed"] and "pyinstrument-cext" not in probe["installed"]
    assert not IMAGE_OWNED & set(probe["installed"])


def test_smdebug_writes_and_reads_a_tensor_with_a_current_protobuf_in_its_pure_python_implementation(probe):
    assert int(probe["protobuf"].split(".")[0]) >= 4 and probe["protobuf_implementation"] == "python"
    assert probe["read"] == [["w", 3, [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], "TRAIN"]]


def test_the_portable_rules_give_the_same_verdicts_on_the_image_python(image_env, demo_splits, tmp_path):
    """Trials written by the real hook here (torch), judged there: a healthy run and a zero-initialised
    one, which fires rules."""
    data = load_split(demo_splits / "train"), load_split(demo_splits / "valid")
    runs = {"healthy": train(data, tmp_path / "healthy", epochs=3),
            "zero_init": train(data, tmp_path / "zero_init", epochs=3,
                               init=lambda model: [nn.init.zeros_(p) for p in model.parameters()])}
    here = {str(run.out / "tensors"): {r["rule"]: r["status"] for r in run.report["rules"]} for run in runs.values()}
    assert "IssuesFound" in here[str(runs["zero_init"].out / "tensors")].values()
    result = image_env.run("-c", RULES, *here)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == here
