"""The gate: the final job's FinalMetricDataList judged by the checks of infra/gate_checks.py
(the table the local engine's gate reads too). A metric that was never reported is no verdict,
never a pass."""
from __future__ import annotations

from infra.config import Config
from infra.gate_checks import RULE_FIRED, GateCheck, gate_checks
from infra.state_machine.placeholders import states_format
from infra.state_machine.vocabulary import fail, fail_path

#: The run's threshold: the config's, or the execution input's.
_THRESHOLD = "$.settings.min_test_accuracy"


def _value(metric: str) -> str:
    return f"$.gate.values.{metric}[0]"


def _verdict(check: GateCheck) -> dict:
    if check.kind == "rule":
        return {"Variable": _value(check.metric), "NumericGreaterThanEquals": RULE_FIRED, "Next": check.state}
    return {"Variable": _value(check.metric), "NumericLessThanPath": _THRESHOLD, "Next": check.state}


def _refusal(check: GateCheck) -> dict:
    if check.kind == "accuracy":
        return fail_path(states_format(check.cause, _value(check.metric), _THRESHOLD), "GateFailed")
    return fail(check.cause, "GateFailed")


def gate_states(cfg: Config, after: str) -> dict:
    checks = gate_checks(cfg, cfg.debugger.mode)
    reported = [c for c in checks if c.kind == "reported"]
    judged = [c for c in checks if c.kind != "reported"]
    presence = {f"{c.metric}.$": f"States.ArrayContains($.gate.reported, '{c.metric}')" for c in reported}
    values = {f"{c.metric}.$": f"$.training.metrics[?(@.MetricName == '{c.metric}')].Value" for c in reported}
    missing = [{"Variable": f"$.gate.present.{c.metric}", "BooleanEquals": False, "Next": c.state} for c in reported]
    return {
        "GateMetrics": {
            "Type": "Pass",
            "Parameters": {"reported.$": "$.training.metrics[*].MetricName"},
            "ResultPath": "$.gate",
            "Next": "GatePresence",
        },
        "GatePresence": {"Type": "Pass", "Parameters": presence, "ResultPath": "$.gate.present", "Next": "AllReported?"},
        "AllReported?": {"Type": "Choice", "Choices": missing, "Default": "GateValues"},
        "GateValues": {"Type": "Pass", "Parameters": values, "ResultPath": "$.gate.values", "Next": "Gate"},
        "Gate": {"Type": "Choice", "Choices": [_verdict(c) for c in judged], "Default": after},
        **{c.state: _refusal(c) for c in checks},
    }
