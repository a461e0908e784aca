"""The deployment gate, decided locally from the same table of checks and refusals as the state
machine's gate states (infra/gate_checks.py), in the same order and with the same words."""
from __future__ import annotations

from infra import gate_checks
from infra.config import Config
from training import metrics


def gate_failure(cfg: Config, debugger_mode: str, final_metrics: dict[str, float]) -> str | None:
    """The reason deployment is refused, or None when the gate passes.

    `debugger_mode` is what the final job ran with (locally, managed runs as portable)."""
    for check in gate_checks.gate_checks(cfg, debugger_mode):
        refusal = check.refusal(final_metrics, cfg.gate.min_test_accuracy)
        if refusal is not None:
            return refusal
    return None


def rules_with_issues(final_metrics: dict[str, float]) -> list[str]:
    """The rules whose `rule_<Name>` metric says they found issues (whether or not they block)."""
    fired = gate_checks.RULE_FIRED
    return [r for r in metrics.RULE_NAMES if final_metrics.get(metrics.rule_metric_name(r), 0) >= fired]
