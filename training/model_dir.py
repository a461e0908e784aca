"""Writes the model dir that SageMaker packs into model.tar.gz, self-contained for serving.

Layout (read by imgclf_serving/inference.py; it serves in either inference container):
  model.pth            state_dict (never a pickled module), CPU tensors
  classes.json         labels in class-index order
  model-meta.json      {"arch", "num_classes", "image_size", "model_version", "optimize"}
  model.onnx           the optimized CPU forward, when optimize is graph or int8 (training/optimize.py)
  config.yaml          the Ray Serve container's application: `serve run` runs deployment:build
  deployment.py        the Ray Serve deployment over the handlers (imgclf_serving/deployment.py)
  code/inference.py    the handlers, as the TorchServe container's toolkit imports them
  code/imgclf_serving/*.py  the modules the handlers and the deployment import
  code/requirements.txt     installed by either container at every start: empty
  code/onnxruntime/         with model.onnx: ONNX Runtime, unpacked for the serving container's Python
                            (training/optimize.py ship_runtime), imported from code/ with no install
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from torch import nn

from training.checkpoint import atomic_save
from training.errors import TrainerError

#: The source tree: training/ and imgclf_serving/ side by side, in the repo and in the job's code dir.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = "deployment.py"
#: `serve run /opt/ml/model/config.yaml`; the container's `serve start` has set the HTTP address.
RAY_SERVE_CONFIG = """\
# The Ray Serve application the SageMaker Ray Serve container runs (`serve run`).
applications:
  - name: imgclf
    route_prefix: /
    import_path: deployment:build
"""


def model_version() -> str:
    """The training job's name in SageMaker (unique per job), else a UTC timestamp."""
    return os.environ.get("TRAINING_JOB_NAME") or time.strftime("local-%Y%m%dT%H%M%SZ", time.gmtime())


def _copy_serving_code(model_dir: Path, source_root: Path) -> None:
    serving = source_root / "imgclf_serving"
    for needed in ("inference.py", DEPLOYMENT, "requirements.txt"):
        if not (serving / needed).is_file():
            raise TrainerError(f"{serving / needed} is missing: the source bundle must include imgclf_serving/{needed}")
    code_dir = model_dir / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(serving / "inference.py", code_dir / "inference.py")
    shutil.copy2(serving / "requirements.txt", code_dir / "requirements.txt")
    package = code_dir / "imgclf_serving"
    package.mkdir(exist_ok=True)
    for module in sorted(serving.glob("*.py")):  # top level only: not imgclf_serving/frontdoor/
        if module.name != DEPLOYMENT:
            shutil.copy2(module, package / module.name)
    shutil.copy2(serving / DEPLOYMENT, model_dir / DEPLOYMENT)
    (model_dir / "config.yaml").write_text(RAY_SERVE_CONFIG)


def write_model_dir(model_dir: Path, model: nn.Module, classes: list[str], arch: str, image_size: int,
                    source_root: Path = SOURCE_ROOT, optimize: str = "none") -> None:
    """`optimize`: the optimized forward that training/optimize.py has put in `model_dir`, if any."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"arch": arch, "num_classes": len(classes), "image_size": image_size,
            "model_version": model_version(), "optimize": optimize}
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        _copy_serving_code(model_dir, source_root)
        (model_dir / "classes.json").write_text(json.dumps(classes, indent=1) + "\n")
        (model_dir / "model-meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    except OSError as err:
        raise TrainerError(f"cannot write the model dir {model_dir}: {err}") from None
    atomic_save(state, model_dir / "model.pth")
