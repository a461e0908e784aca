"""The deployment gate's checks and refusals: one table, read by the state machine's gate states
(infra/state_machine/gate.py) and by the local engine's gate (imgclf/local/gate.py).

The gate reads the final training job's metrics. With portable rules that block, every
`rule_<Name>` must be reported (a missing one is no verdict, never a pass) and be below
RULE_FIRED; `test_acc` must be reported and reach the run's min_test_accuracy. With an optimized
forward (endpoint.optimize), its loss of test top-1 to fp32 must not exceed the configured margin
and its top-1 agreement with fp32 must reach the configured share. The checks run in
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
#: What the optimized forward's checks read (training/optimize.py prints them).
OPTIMIZED_DROP_METRIC = "optimized_acc_drop"
OPTIMIZED_AGREEMENT_METRIC = "optimized_agreement"
#: A rule metric at or above this value means the rule found issues.
RULE_FIRED = 1
#: The refusal for a rule that found issues, portable (its metric) or managed (its rule job).
RULE_FOUND_ISSUES = "rule {} found issues"


@dataclass(frozen=True)
class GateCheck:
    """One check. `kind`: `reported` (the metric is in the job's metrics), `rule` (the rule metric
    is below RULE_FIRED), `accuracy` (the metric reaches the threshold), `at_most` (the metric does
    not exceed the threshold). The threshold is `limit`, a number from the config, or with no
    limit the run's min_test_accuracy. `cause` is final for the first two; for the others it has
    two slots, the value and the threshold."""

    state: str  # the machine's Fail state for this refusal
    kind: Literal["reported", "rule", "accuracy", "at_most"]
    metric: str
    cause: str
    limit: float | None = None

    def refusal(self, final_metrics: dict[str, float], min_test_accuracy: float) -> str | None:
        """The cause if this check fails on `final_metrics`, else None (local evaluation)."""
        if self.kind == "reported":
            return None if self.metric in final_metrics else self.cause
        value = final_metrics[self.metric]
        if self.kind == "rule":
            return self.cause if value >= RULE_FIRED else None
        threshold = min_test_accuracy if self.limit is None else self.limit
        failed = value > threshold if self.kind == "at_most" else value < threshold
        return self.cause.format(value, threshold) if failed else None


def blocking_rules(cfg: Config, debugger_mode: str) -> list[str]:
    """The portable rules whose verdict the gate needs (managed rules are judged by their rule
    jobs' statuses before the gate)."""
    return list(metrics.RULE_NAMES) if debugger_mode == "portable" and cfg.gate.block_on_rules else []


def gate_checks(cfg: Config, debugger_mode: str) -> list[GateCheck]:
    """The checks, in order, for a final job that ran with `debugger_mode`."""
    rules = blocking_rules(cfg, debugger_mode)
    optimized = cfg.endpoint.optimize != "none"
    required = [*(metrics.rule_metric_name(r) for r in rules), ACCURACY_METRIC,
                *((OPTIMIZED_DROP_METRIC, OPTIMIZED_AGREEMENT_METRIC) if optimized else ())]
    return [
        *(
            GateCheck(f"NoVerdict_{m}", "reported", m, f"{m} was not reported by the training job: no verdict, so no deployment")
            for m in required
        ),
        *(GateCheck(f"RuleFailed_{r}", "rule", metrics.rule_metric_name(r), RULE_FOUND_ISSUES.format(r)) for r in rules),
        GateCheck("AccuracyTooLow", "accuracy", ACCURACY_METRIC, f"{ACCURACY_METRIC} {{}} < {{}}"),
        *(
            (
                GateCheck("OptimizedAccuracyDrop", "at_most", OPTIMIZED_DROP_METRIC,
                          f"the {cfg.endpoint.optimize} forward loses {{}} of test top-1 to fp32, more than the "
                          "allowed {}", limit=cfg.gate.max_optimized_accuracy_drop),
                GateCheck("OptimizedAgreementTooLow", "accuracy", OPTIMIZED_AGREEMENT_METRIC,
                          f"the {cfg.endpoint.optimize} forward agrees with fp32 on {{}} of test images, fewer "
                          "than the required {}", limit=cfg.gate.min_optimized_agreement),
            )
            if optimized else ()
        ),
    ]

