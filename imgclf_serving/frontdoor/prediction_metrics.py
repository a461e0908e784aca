"""What a prediction says about the model: top-1 confidence, entropy and the predicted class, as
CloudWatch embedded-metric-format lines (Powertools).

Names and dimensions are defined here once: the Lambda emits them, the stack's dashboard and alarms
(infra/monitoring.py) read them. Pure Python and Powertools: in the Lambda asset this package is
the top-level `frontdoor`.

Dimensions, and why (each distinct dimension combination is a CloudWatch custom metric, billed):
- Confidence and Entropy go out under two dimension sets in one record: `service` alone (the
  series the alarms watch, stable across deployments) and `service` + `model_version` (to compare a
  new model with the one before on the dashboard). Versions come one per retrain, so few.
- ClassPredicted (a count of 1 per prediction) has `service` + `class` only, never crossed with
  the version: its values are the labels of the model's classes.json (the endpoint answers with
  nothing else), so the series are capped at the number of classes, and a label that is not a
  short printable string (over MAX_CLASS_CHARS) is counted as OTHER_CLASS. The class mix per model
  version is in the capture (capture.py) and the drift report, which do not bill per series.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

CONFIDENCE = "Confidence"
ENTROPY = "Entropy"
CLASS_PREDICTED = "ClassPredicted"
PREDICTIONS = "Predictions"
LATENCY = "Latency"
ERRORS = "Errors"
#: Dimension names.
SERVICE = "service"
MODEL_VERSION = "model_version"
CLASS = "class"
ERROR_CODE = "code"
MAX_CLASS_CHARS = 100
OTHER_CLASS = "other"


@dataclass(frozen=True)
class Signals:
    """One prediction's monitoring signals, read from the endpoint's JSON answer."""

    model_version: str
    label: str
    confidence: float
    entropy: float
    scores: tuple[float, ...]


def signals(result: dict[str, Any]) -> Signals | None:
    """The signals of a top-k answer (inference.output_fn's shape), or None when it does not have
    that shape: a model that answers otherwise still gets its answer through, unmeasured."""
    predictions = result.get("predictions")
    model = result.get("model")
    if not isinstance(predictions, list) or not predictions:
        return None
    scores = []
    for item in predictions:
        score = item.get("score") if isinstance(item, dict) else None
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not 0 <= score <= 1:
            return None
        scores.append(float(score))
    label = predictions[0].get("label")
    if not isinstance(label, str) or not label:
        return None
    version = model.get("version") if isinstance(model, dict) else None
    return Signals(
        model_version=str(version) if version not in (None, "") else "unknown",
        label=label,
        confidence=max(scores),
        entropy=entropy(scores),
        scores=tuple(scores),
    )


def entropy(top_scores: list[float] | tuple[float, ...]) -> float:
    """Shannon entropy in nats of the top-k scores, with the mass outside the top k as one more
    outcome. The endpoint returns the top k only, so with k below the number of classes this is a
    lower bound of the full distribution's entropy (equal at k = number of classes); it still
    rises as the model grows unsure, which is what the dashboard and the report follow."""
    rest = max(0.0, 1.0 - sum(top_scores))
    return -sum(p * math.log(p) for p in (*top_scores, rest) if p > 0)


def class_dimension(label: str) -> str:
    """The `class` dimension value: the label, or OTHER_CLASS when it is not a short printable one."""
    if len(label) > MAX_CLASS_CHARS or not re.fullmatch(r"[\x20-\x7e]+", label):
        return OTHER_CLASS
    return label


def emit(found: Signals, *, namespace: str, service: str) -> None:
    """Prints the prediction's EMF lines (one for confidence + entropy, one for the class)."""
    quality = EphemeralMetrics(namespace=namespace, service=service)
    quality.add_metric(name=CONFIDENCE, unit=MetricUnit.NoUnit, value=found.confidence)
    quality.add_metric(name=ENTROPY, unit=MetricUnit.NoUnit, value=found.entropy)
    quality.add_dimensions(**{SERVICE: service, MODEL_VERSION: found.model_version})
    quality.flush_metrics()
    with single_metric(
        name=CLASS_PREDICTED, unit=MetricUnit.Count, value=1, namespace=namespace,
        default_dimensions={SERVICE: service},
    ) as metric:
        metric.add_dimension(name=CLASS, value=class_dimension(found.label))
