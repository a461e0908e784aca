"""Whether the optimized forward may serve: the checks it must pass against fp32, one table read by
the trainer (training/optimize.py, which decides) and by the local report (which says why).

The checks refuse the optimized model, never the release: a forward that fails one, or that could
not be produced or measured, is not shipped, the model dir serves the fp32 network, and the
deployment goes ahead (the deployment gate, infra/gate_checks.py, judges fp32's test_acc as always).
So with endpoint.optimize on, serving loses at most the configured margin of test top-1 by
construction. The thresholds reach the trainer as hyperparameters from the config's gate section,
in the cloud and locally alike. Imports nothing heavy: the local report reads it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The trainer's metric: 1 when model.onnx ships, 0 when the model dir fell back to fp32.
KEPT_METRIC = "optimized_kept"
#: The defaults of --max-optimized-accuracy-drop and --min-optimized-agreement (and of the config's gate).
DEFAULT_MAX_DROP = 0.005
DEFAULT_MIN_AGREEMENT = 0.98


@dataclass(frozen=True)
class OptimizedCheck:
    """One check: `metric` (training/optimize.py's Comparison.metrics) must stay at most, or at
    least, its limit. `cause` fills `{forward}`, `{value}` and `{limit}`."""

    metric: str
    bound: Literal["at_most", "at_least"]
    cause: str

    def refusal(self, forward: str, value: float, limit: float) -> str | None:
        failed = value > limit if self.bound == "at_most" else value < limit
        return self.cause.format(forward=forward, value=round(value, 4), limit=limit) if failed else None


#: In order; the first that fails is the reason. Keys of the limits that `refusal` takes.
CHECKS = {
    "max_drop": OptimizedCheck("optimized_acc_drop", "at_most",
                               "the {forward} forward loses {value} of test top-1 to fp32, more than the allowed {limit}"),
    "min_agreement": OptimizedCheck("optimized_agreement", "at_least",
                                    "the {forward} forward agrees with fp32 on {value} of test images, fewer than the "
                                    "required {limit}"),
}
#: Why a forward that was never measured does not ship: no verdict is never a pass.
NO_TEST_SPLIT = "there is no test split to compare the {forward} forward with fp32 on"


def refusal(forward: str, found: dict[str, float], limits: dict[str, float]) -> str | None:
    """Why `forward` may not serve, given its comparison metrics `found`; None when it may."""
    for key, check in CHECKS.items():
        reason = check.refusal(forward, found[check.metric], limits[key])
        if reason is not None:
            return reason
    return None


def fallback_line(forward: str, reason: str) -> str:
    """The trainer's log line when the model dir falls back to fp32 (the report quotes the reason)."""
    return f"optimized forward ({forward}) not shipped: {reason}; the model serves the fp32 network"
