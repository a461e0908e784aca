"""The drift report's reference: what the model predicts on the test split, saved with the model.

`monitoring-baseline.json` in the model dir holds the class mix of the model's top-1 predictions
and a histogram of its top-1 confidence on the test split; `imgclf monitor report` compares the
front door's captured predictions with it (imgclf/monitor.py). The histogram's edges travel in the
file, so the report bins live confidences exactly as the baseline did.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the report (imgclf/monitor.py) reads this module's bins without torch
    from training.predictions import Predictions

BASELINE_FILE = "monitoring-baseline.json"
#: Ten equal bins over [0, 1]: the report's PSI needs the same bins on both sides.
CONFIDENCE_EDGES = tuple(round(i / 10, 1) for i in range(11))


def confidence_counts(confidences: list[float], edges: tuple[float, ...] | list[float] = CONFIDENCE_EDGES) -> list[int]:
    """Counts per bin [edges[i], edges[i+1]), the last bin closed (a confidence of 1.0 lands in it)."""
    counts = [0] * (len(edges) - 1)
    for value in confidences:
        index = next((i for i in range(len(counts)) if value < edges[i + 1]), len(counts) - 1)
        counts[index] += 1
    return counts


def baseline(classes: list[str], answers: Predictions) -> dict:
    """The class mix and confidence histogram of the network's top-1 answers on the test split
    (training/predictions.py)."""
    return {
        "source": "test split",
        "count": len(answers.predicted),
        "class_counts": {label: answers.predicted.count(i) for i, label in enumerate(classes)},
        "confidence_edges": list(CONFIDENCE_EDGES),
        "confidence_counts": confidence_counts(answers.confidences),
    }


def write_baseline(model_dir: Path, classes: list[str], answers: Predictions) -> None:
    (Path(model_dir) / BASELINE_FILE).write_text(json.dumps(baseline(classes, answers), indent=1) + "\n")
