"""The trained network's top-1 answers on the whole test split, from one pass through it.

Both ends of a job's test-split reports read them: the evaluation (training/evaluation.py: the
confusion matrix and per-class figures) and the drift report's baseline
(training/monitoring_baseline.py: the class mix and the confidence histogram). One pass, so the
two cannot describe different answers and the split is not run twice.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Predictions:
    """Per test image, in the loader's order: its class index, the top-1 class index, and the
    softmax probability of that class."""

    targets: list[int]
    predicted: list[int]
    confidences: list[float]


@torch.inference_mode()
def predictions(network: torch.nn.Module, loader, device: torch.device) -> Predictions:
    """`network`'s top-1 answers over `loader`, in eval mode: the logits' argmax, as the trainer's
    test accuracy counts it, and its softmax probability."""
    network.eval()
    targets: list[int] = []
    predicted: list[int] = []
    confidences: list[float] = []
    for images, labels in loader:
        logits = network(images.to(device)).float()
        predicted += logits.argmax(dim=1).cpu().tolist()
        confidences += torch.softmax(logits, dim=1).max(dim=1).values.cpu().tolist()
        targets += labels.tolist()
    return Predictions(targets, predicted, confidences)
