"""The network's shape, defined once: training builds it and loads weights into it, serving
rebuilds it from `model-meta.json` and loads the saved state_dict (never a pickled module)."""
from __future__ import annotations

from torch import nn
from torchvision import models

ARCHITECTURES = ("resnet50",)


def build_classifier(arch: str, num_classes: int) -> nn.Module:
    """The backbone with random weights and a fresh `num_classes` head."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    model = models.resnet50(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model
