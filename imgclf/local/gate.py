"""The deployment gate, decided as the state machine's Gate states decide it.

Reads the final training job's FinalMetricDataList: with portable rules and `gate.block_on_rules`,
every `rule_<Name>` must be reported (a missing one is no verdict, never a pass) and be 0; `test_acc`
must be reported and reach `gate.min_test_accuracy`. The reasons are worded like the state
machine's Fail causes (infra/state_machine.py), in the same order.
"""
from __future__ import annotations

from infra.config import Config
from training import metrics


def gate_failure(cfg: Config, debugger_mode: str, final_metrics: dict[str, float]) -> str | None:
    """The reason deployment is refused, or None when the gate passes.

    `debugger_mode` is what the final job ran with (locally, managed runs as portable)."""
    rules = list(metrics.RULE_NAMES) if debugger_mode == "portable" and cfg.gate.block_on_rules else []
    required = [*(metrics.rule_metric_name(r) for r in rules), "test_acc"]
    for name in required:
        if name not in final_metrics:
            return f"{name} was not reported by the training job: no verdict, so no deployment"
    for rule in rules:
        if final_metrics[metrics.rule_metric_name(rule)] >= 1:
            return f"rule {rule} found issues"
    if final_metrics["test_acc"] < cfg.gate.min_test_accuracy:
        return f"test_acc {final_metrics['test_acc']} < {cfg.gate.min_test_accuracy}"
    return None


def rules_with_issues(final_metrics: dict[str, float]) -> list[str]:
    """The rules whose `rule_<Name>` metric says they found issues (whether or not they block)."""
    return [r for r in metrics.RULE_NAMES if final_metrics.get(metrics.rule_metric_name(r), 0) >= 1]
