"""Model dirs with random weights, written by the trainer's own writer (training/model_dir.py).

The layout is therefore the one model.tar.gz holds, and code/ is copied from this checkout, so
what the toolkit imports from code/ is the code under test.
"""
from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import torch

from imgclf_serving.architecture import build_classifier
from training.model_dir import write_model_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVING_DIR = REPO_ROOT / "imgclf_serving"
CLASSES = ("cat", "coffee", "rocket")
ARCH = "resnet50"
#: model-meta.json's model_version; the writer takes it from the job name, as in SageMaker.
MODEL_VERSION = "test-1"


def build_model_dir(root: Path, image_size: int = 32) -> Path:
    """A ResNet-50 over CLASSES with seeded random weights, written to `root`; returns `root`."""
    torch.manual_seed(0)
    network = build_classifier(ARCH, len(CLASSES))
    with mock.patch.dict(os.environ, {"TRAINING_JOB_NAME": MODEL_VERSION}):
        write_model_dir(root, network, list(CLASSES), ARCH, image_size)
    return root
