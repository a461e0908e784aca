"""Names, bucket layout and run-input limits of one stack: read by the stack's constructs, the state
machine and the CLI.

One home for them, so that a bucket construct, an IAM scope and the pipeline's jobs cannot disagree
on where a run writes or what the endpoint is called.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from imgclf_serving.frontdoor import capture
from infra.config import Config

#: Output prefix of every job (models, managed debug output, per-job checkpoints).
OUTPUT_PREFIX = "runs"
#: Where a real-time endpoint's SageMaker data capture writes.
DATA_CAPTURE_PREFIX = "capture"
#: Where the front door's sampled predictions go (imgclf_serving/frontdoor/capture.py), on any endpoint type.
FRONTDOOR_CAPTURE_PREFIX = capture.DEFAULT_PREFIX


def endpoint_name(cfg: Config) -> str:
    """Fixed per stack, so that the Lambda front door knows it before the first run."""
    return f"{cfg.name}-endpoint"


def model_package_group_name(cfg: Config) -> str:
    """The stack's model registry: every gated run registers a version here."""
    return f"{cfg.name}-models"


def rollback_alarm_name(cfg: Config, metric: str) -> str:
    """The CloudWatch alarms a real-time deployment watches (AutoRollbackConfiguration)."""
    return f"{cfg.name}-endpoint-{metric}"


#: Where a run writes its evidence (the ModelMetrics files of its model package), under its job's output.
EVIDENCE_FILE = "evidence/metrics.json"
#: The endpoint tag that names the model package version it serves (`imgclf models list` reads it).
SERVING_PACKAGE_TAG = "imgclf:model-package"


# --- the run input ------------------------------------------------------------------------------
# What an execution's input may override, and the limits on it. The state machine's ValidateInput
# states are built from this table, and `imgclf start` checks with it (run_input_problem), so the
# CLI refuses exactly what the machine would refuse, with the same words.

#: The execution-input key of the dataset: a key prefix in the pipeline bucket holding train/ valid/ test/.
DATASET_PREFIX = "dataset_prefix"
#: Step Functions `StringMatches` patterns (`*`: any run of characters) a dataset prefix must not
#: match. The channels append `/train/` etc., so a trailing slash would make `s3://b/x//train/`.
DATASET_PREFIX_REFUSED = ("s3:*", "/*", "*/", "*//*", "* *")
DATASET_PREFIX_MESSAGE = (
    "execution input dataset_prefix must be a key prefix in the pipeline bucket such as "
    "'datasets/demo' (no s3://, no leading, trailing or double slash, no spaces)"
)


@dataclass(frozen=True)
class NumberLimit:
    """A numeric execution-input key and its closed range."""

    key: str
    low: int
    high: int

    @property
    def message(self) -> str:
        return f"execution input {self.key} must be a number from {self.low} to {self.high}"


#: The numeric overrides. The machine rounds a fractional `epochs` to the nearest whole number.
NUMBER_LIMITS = (NumberLimit("epochs", 1, 1000), NumberLimit("min_test_accuracy", 0, 1))
#: Every key an execution input may hold, each overriding the config value of the same meaning.
OVERRIDABLE = (DATASET_PREFIX, *(limit.key for limit in NUMBER_LIMITS))
#: The execution-input key of a deployment without training: the ARN of an approved version of the
#: stack's model package group (the approval rule, `imgclf rollback`).
MODEL_PACKAGE = "model_package_arn"


def string_matches(value: str, pattern: str) -> bool:
    """Step Functions' `StringMatches`: `*` matches any run of characters, `\\*` a literal star."""
    pieces = re.split(r"(?<!\\)\*", pattern)
    regex = ".*".join(re.escape(piece.replace("\\*", "*")) for piece in pieces)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def run_input_problem(key: str, value: Any) -> str | None:
    """Why the machine's ValidateInput refuses `value` for `key`, or None when it accepts it."""
    if key == DATASET_PREFIX:
        refused = not isinstance(value, str) or value == "" or any(string_matches(value, p) for p in DATASET_PREFIX_REFUSED)
        return DATASET_PREFIX_MESSAGE if refused else None
    for limit in NUMBER_LIMITS:
        if key == limit.key:
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            return None if numeric and limit.low <= value <= limit.high else limit.message
    raise KeyError(f"{key!r} is not an execution-input key; known: {', '.join(OVERRIDABLE)}")
