"""Model dirs laid out as model.tar.gz holds them (see BRIEF "Model dir"), with random weights.

Test-only: training writes the real ones. The code/ copies are made from this checkout, so what
the toolkit imports from code/ is the code under test.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from serving.architecture import build_classifier

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVING_DIR = REPO_ROOT / "serving"
CLASSES = ("cat", "coffee", "rocket")


def build_model_dir(
    root: Path,
    image_size: int = 32,
    classes: tuple[str, ...] = CLASSES,
    arch: str = "resnet50",
    model_version: str = "test-1",
    seed: int = 0,
) -> Path:
    """Write model.pth, classes.json, model-meta.json and code/ under `root`; return `root`."""
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    network = build_classifier(arch, len(classes))
    torch.save(network.state_dict(), root / "model.pth")
    (root / "classes.json").write_text(json.dumps(list(classes)))
    meta = {"arch": arch, "num_classes": len(classes), "image_size": image_size, "model_version": model_version}
    (root / "model-meta.json").write_text(json.dumps(meta))
    copy_code(root / "code")
    return root


def copy_code(code_dir: Path) -> None:
    """code/inference.py, code/serving/*.py (top level only, no frontdoor), code/requirements.txt."""
    (code_dir / "serving").mkdir(parents=True, exist_ok=True)
    shutil.copy2(SERVING_DIR / "inference.py", code_dir / "inference.py")
    for module in SERVING_DIR.glob("*.py"):
        shutil.copy2(module, code_dir / "serving" / module.name)
    shutil.copy2(SERVING_DIR / "requirements.txt", code_dir / "requirements.txt")
