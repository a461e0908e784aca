"""The deployment gate's checks and refusals: one table, read by the state machine's gate states
(infra/state_machine/gate.py) and by the local engine's gate (imgclf/local/gate.py).

The gate reads the final training job's metrics. With portable rules that block, every
`rule_<Name>` must be reported (a missing one is no verdict, never a pass) and be below
RULE_FIRED; `test_acc` must be reported and reach the run's min_test_accuracy. An optimized
forward (endpoint.optimize) is not judged here: its checks refuse the optimized model, never the
release, so the trainer applies them where it produces it and falls back to fp32
(training/optimized_checks.py), and `test_acc` is fp32's. The checks run in
the table's order, and the first that fails is the refusal. Each cause is a template whose `{}`
slots States.Format (in the machine) and str.format (locally) fill the same way.
Imports nothing heavy: the CLI and synth read it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.config import Config
from training import metrics

#: The metric the accuracy check reads.
ACCURACY_METRIC = "test_acc"
#: A rule metric at or above this value means the rule found issues.
RULE_FIRED = 1
#: The refusal for a rule that found issues, portable (its metric) or managed (its rule job).
RULE_FOUND_ISSUES = "rule {} found issues"


@dataclass(frozen=True)
class GateCheck:
    """One check. `kind`: `reported` (the metric is in the job's metrics), `rule` (the rule metric
    is below RULE_FIRED), `accuracy` (the metric reaches the run's min_test_accuracy). `cause` is
    final for the first two; for `accuracy` it has two slots, the value and the threshold."""

    state: str  # the machine's Fail state for this refusal
    kind: Literal["reported", "rule", "accuracy"]
    metric: str
    cause: str

    def refusal(self, final_metrics: dict[str, float], min_test_accuracy: float) -> str | None:
        """The cause if this check fails on `final_metrics`, else None (local evaluation)."""
        if self.kind == "reported":
            return None if self.metric in final_metrics else self.cause
        value = final_metrics[self.metric]
        if self.kind == "rule":
            return self.cause if value >= RULE_FIRED else None
        return self.cause.format(value, min_test_accuracy) if value < min_test_accuracy else None


def blocking_rules(cfg: Config, debugger_mode: str) -> list[str]:
    """The portable rules whose verdict the gate needs (managed rules are judged by their rule
    jobs' statuses before the gate)."""
    return list(metrics.RULE_NAMES) if debugger_mode == "portable" and cfg.gate.block_on_rules else []


def gate_checks(cfg: Config, debugger_mode: str) -> list[GateCheck]:
    """The checks, in order, for a final job that ran with `debugger_mode`."""
    rules = blocking_rules(cfg, debugger_mode)
    required = [*(metrics.rule_metric_name(r) for r in rules), ACCURACY_METRIC]
    return [
        *(
            GateCheck(f"NoVerdict_{m}", "reported", m, f"{m} was not reported by the training job: no verdict, so no deployment")
            for m in required
        ),
        *(GateCheck(f"RuleFailed_{r}", "rule", metrics.rule_metric_name(r), RULE_FOUND_ISSUES.format(r)) for r in rules),
        GateCheck("AccuracyTooLow", "accuracy", ACCURACY_METRIC, f"{ACCURACY_METRIC} {{}} < {{}}"),
    ]
