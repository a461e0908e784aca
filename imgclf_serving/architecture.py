"""The network's shape, defined once: training builds it and loads weights into it, serving
rebuilds it from `model-meta.json` and loads the saved state_dict (never a pickled module)."""
from __future__ import annotations

from torch import nn
from torchvision import models

from imgclf_serving.backbones import backbone


def build_classifier(arch: str, num_classes: int) -> nn.Module:
    """torchvision's `arch` with random weights and a `num_classes` head (torchvision's own head
    layout, so the state_dict keys are torchvision's)."""
    backbone(arch)  # an unknown arch: ValueError naming the choices
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    return models.get_model(arch, weights=None, num_classes=num_classes)
