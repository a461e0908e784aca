"""The deployment gate (infra/gate_checks.py), one table run through both readers: the state
machine's gate states in moto's interpreter, and the local engine's gate_failure."""
from __future__ import annotations

import pytest
from sfn_harness import Scenario, ending_at, run_flow

from imgclf.local.gate import gate_failure
from infra.config import load_config
from infra.layout import endpoint_name
from infra.state_machine import Deployment, build_definition
from training.metrics import RULE_NAMES, rule_metric_name

DEPLOYMENT = Deployment("us-east-1", "arn:aws:iam::123456789012:role/sm", "imgclf-data", "s3://imgclf-data/bundle.tar.gz")
CLEAN_RULES = {rule_metric_name(r): 0.0 for r in RULE_NAMES}
NO_VERDICT = "was not reported by the training job: no verdict, so no deployment"
INT8 = {"endpoint": {"optimize": "int8"}}
#: An int8 forward 0.4 points below fp32 that agrees with it on 99 % of the test images: shipped.
KEPT = {"optimized_test_acc": 0.946, "optimized_acc_drop": 0.004, "optimized_agreement": 0.99, "optimized_kept": 1.0}
#: An int8 forward 3 points below fp32 that agrees with it on 90 % of the test images: not shipped.
FELL_BACK = {"optimized_test_acc": 0.92, "optimized_acc_drop": 0.03, "optimized_agreement": 0.9, "optimized_kept": 0.0}

#: (id, config, the final job's metrics, the refusal or None when the gate passes)
CASES = [
    ("clean-rules-enough-accuracy", {}, {**CLEAN_RULES, "test_acc": 0.95}, None),
    ("a-rule-found-issues", {}, {**CLEAN_RULES, "rule_Overfit": 1.0, "test_acc": 0.93}, "rule Overfit found issues"),
    ("a-rule-never-reported", {}, {**{k: v for k, v in CLEAN_RULES.items() if k != "rule_Overtraining"}, "test_acc": 0.93},
     f"rule_Overtraining {NO_VERDICT}"),
    ("accuracy-below-the-default-threshold", {}, {**CLEAN_RULES, "test_acc": 0.41}, "test_acc 0.41 < 0.8"),
    ("accuracy-below-a-configured-threshold", {"gate": {"min_test_accuracy": 0.9}}, {**CLEAN_RULES, "test_acc": 0.5},
     "test_acc 0.5 < 0.9"),
    ("rules-that-do-not-block", {"gate": {"block_on_rules": False}}, {**CLEAN_RULES, "rule_Overfit": 1.0, "test_acc": 0.95}, None),
    ("debugger-off-needs-no-rules", {"debugger": {"mode": "off"}}, {"test_acc": 0.95}, None),
    ("accuracy-never-reported", {"debugger": {"mode": "off"}}, {"valid_loss": 0.2}, f"test_acc {NO_VERDICT}"),
    # The optimized forward's checks refuse the optimized model in the trainer, never the release.
    ("an-optimized-forward-that-ships", INT8, {**CLEAN_RULES, "test_acc": 0.95, **KEPT}, None),
    ("an-optimized-forward-that-fell-back-to-fp32", INT8, {**CLEAN_RULES, "test_acc": 0.95, **FELL_BACK}, None),
    ("fp32-below-the-threshold-whatever-the-optimized-forward", INT8, {**CLEAN_RULES, "test_acc": 0.5, **KEPT},
     "test_acc 0.5 < 0.8"),
    ("an-optimized-forward-never-measured", {"endpoint": {"optimize": "graph"}}, {**CLEAN_RULES, "test_acc": 0.95}, None),
]
IDS = [case[0] for case in CASES]


@pytest.mark.parametrize(("config", "final_metrics", "refusal"), [case[1:] for case in CASES], ids=IDS)
def test_the_machines_gate_decides_as_the_table_says(monkeypatch, config, final_metrics, refusal):
    cfg = load_config(config)
    definition = ending_at(build_definition(cfg, DEPLOYMENT), "CreateModel")
    run = run_flow(monkeypatch, definition, Scenario(metrics=final_metrics), endpoint_name=endpoint_name(cfg))
    if refusal is None:
        assert run.status == "SUCCEEDED", run.cause
    else:
        assert (run.status, run.error, run.cause) == ("FAILED", "GateFailed", refusal)
        assert "CreateModel" not in run.visited


@pytest.mark.parametrize(("config", "final_metrics", "refusal"), [case[1:] for case in CASES], ids=IDS)
def test_the_local_gate_decides_as_the_table_says(config, final_metrics, refusal):
    cfg = load_config(config)
    assert gate_failure(cfg, cfg.debugger.mode, final_metrics) == refusal
