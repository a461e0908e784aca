"""The one definition of the training log's metric lines and the regexes that read them.

SageMaker reads metrics from the job's log with the `MetricDefinitions` regexes of the request;
the local engine reads them the same way. The printer and the regexes live side by side here so
that they cannot drift. This module imports nothing heavy: `infra/` imports it at synth time.
"""
from __future__ import annotations

import re

from training.optimized_checks import KEPT_METRIC

#: Number format shared by the printer and the regexes (also matches nan/inf for broken runs).
_NUMBER = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"

#: Metrics printed once per epoch, in this order: `epoch=3 train_loss=0.4121 ...`.
EPOCH_METRICS = ("train_loss", "train_acc", "valid_loss", "valid_acc")
#: Metrics printed once after training, on the test channel.
FINAL_METRICS = ("test_loss", "test_acc")
#: Printed after those when the job produced an optimized forward (training/optimize.py): its test
#: top-1, fp32's minus its (both on the CPU), the share of test images where both agree on top-1, and
#: whether it ships (1) or the model dir fell back to fp32 (0; training/optimized_checks.py).
OPTIMIZED_METRICS = ("optimized_test_acc", "optimized_acc_drop", "optimized_agreement", KEPT_METRIC)
#: Debugger rules evaluated in portable mode; each prints `rule_<Name>=0|1` (1 = issue found).
RULE_NAMES = (
    "VanishingGradient",
    "Overfit",
    "Overtraining",
    "PoorWeightInitialization",
    "LossNotDecreasing",
)

#: The tuning objective: SageMaker minimises the last reported value of this metric.
OBJECTIVE_METRIC = "valid_loss"
OBJECTIVE_TYPE = "Minimize"


def rule_metric_name(rule: str) -> str:
    return f"rule_{rule}"


def all_metric_names() -> tuple[str, ...]:
    return (*EPOCH_METRICS, *FINAL_METRICS, *OPTIMIZED_METRICS, *(rule_metric_name(r) for r in RULE_NAMES))


def metric_regex(name: str) -> str:
    """Regex with one group for `name`'s value. The leading word boundary (`_` counts as a word
    character) keeps `loss` from matching inside `valid_loss`; `\\b` rather than a lookbehind,
    because every regex engine that may read these (SageMaker's, RE2, Python's) supports it."""
    return rf"\b{re.escape(name)}={_NUMBER}"


def metric_definitions() -> list[dict[str, str]]:
    """`MetricDefinitions` for CreateTrainingJob / CreateHyperParameterTuningJob."""
    return [{"Name": name, "Regex": metric_regex(name)} for name in all_metric_names()]


def _fmt(value: float) -> str:
    return f"{value:.6f}" if value == value and abs(value) != float("inf") else str(value)


def format_epoch_line(epoch: int, **values: float) -> str:
    """`epoch=3 train_loss=0.412100 train_acc=... valid_loss=... valid_acc=...`."""
    missing = [m for m in EPOCH_METRICS if m not in values]
    if missing:
        raise ValueError(f"epoch line is missing {missing}")
    return " ".join([f"epoch={epoch}", *(f"{m}={_fmt(values[m])}" for m in EPOCH_METRICS)])


def format_metric_line(**values: float) -> str:
    """One line of `name=value` pairs, e.g. `test_loss=0.31 test_acc=0.91` or `rule_Overfit=0`."""
    return " ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in values.items())


def parse_metrics(log_text: str, definitions: list[dict[str, str]]) -> dict[str, list[float]]:
    """Every value each definition's regex finds in `log_text`, in order, as SageMaker would.

    Takes the definitions (from a request dict) rather than this module's own, so that the local
    engine reads logs with exactly what the request says."""
    found: dict[str, list[float]] = {}
    for d in definitions:
        values = [float(m.group(1)) for m in re.finditer(d["Regex"], log_text)]
        if values:
            found[d["Name"]] = values
    return found
