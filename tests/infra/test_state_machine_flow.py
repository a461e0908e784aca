"""The state machine's flow logic, executed by moto's Step Functions interpreter (see sfn_harness)."""
from __future__ import annotations

import pytest
from sfn_harness import Scenario, run_flow

from infra.config import load_config
from infra.state_machine import Deployment, build_definition, endpoint_name

DEPLOYMENT = Deployment(
    region="us-east-1",
    role_arn="arn:aws:iam::123456789012:role/imgclf-sagemaker",
    bucket_name="imgclf-data",
    source_bundle_uri="s3://cdk-assets-123456789012-us-east-1/bundle.tar.gz",
)
PORTABLE_RULES_CLEAN = {
    "rule_VanishingGradient": 0.0,
    "rule_Overfit": 0.0,
    "rule_Overtraining": 0.0,
    "rule_PoorWeightInitialization": 0.0,
    "rule_LossNotDecreasing": 0.0,
}


def _run(monkeypatch, scenario: Scenario, execution_input: dict | None = None, **config):
    cfg = load_config(config)
    return run_flow(
        monkeypatch, build_definition(cfg, DEPLOYMENT), scenario, execution_input, endpoint_name=endpoint_name(cfg)
    )


def test_a_passing_gate_creates_the_endpoint_with_this_runs_config(monkeypatch):
    run = _run(monkeypatch, Scenario(metrics={**PORTABLE_RULES_CLEAN, "test_acc": 0.93}))
    assert run.status == "SUCCEEDED", run.cause
    assert "CreateEndpoint" in run.visited and "UpdateEndpoint" not in run.visited
    assert run.endpoint["EndpointConfigName"] == run.output["endpoint_config"]


def test_an_existing_endpoint_is_updated_to_the_new_config(monkeypatch):
    run = _run(monkeypatch, Scenario(metrics={**PORTABLE_RULES_CLEAN, "test_acc": 0.93}, endpoint_exists=True))
    assert run.status == "SUCCEEDED", run.cause
    assert "UpdateEndpoint" in run.visited and "CreateEndpoint" not in run.visited
    assert run.endpoint["EndpointConfigName"] == run.output["endpoint_config"] != "previous-config"


def test_a_rule_that_found_issues_stops_the_run_with_its_name(monkeypatch):
    run = _run(monkeypatch, Scenario(metrics={**PORTABLE_RULES_CLEAN, "rule_Overfit": 1.0, "test_acc": 0.93}))
    assert (run.status, run.error, run.cause) == ("FAILED", "GateFailed", "rule Overfit found issues")
    assert "CreateModel" not in run.visited


def test_accuracy_below_the_threshold_stops_the_run_with_both_numbers(monkeypatch):
    run = _run(monkeypatch, Scenario(metrics={**PORTABLE_RULES_CLEAN, "test_acc": 0.41}))
    assert (run.status, run.cause) == ("FAILED", "test_acc 0.41 < 0.8")
    assert "CreateModel" not in run.visited


def test_a_rule_that_never_reported_is_no_verdict_and_stops_the_run(monkeypatch):
    metrics = {k: v for k, v in PORTABLE_RULES_CLEAN.items() if k != "rule_Overtraining"}
    run = _run(monkeypatch, Scenario(metrics={**metrics, "test_acc": 0.93}))
    assert run.status == "FAILED"
    assert run.cause.startswith("rule_Overtraining was not reported")


def test_execution_input_overrides_the_threshold(monkeypatch):
    run = _run(monkeypatch, Scenario(metrics={**PORTABLE_RULES_CLEAN, "test_acc": 0.93}), {"min_test_accuracy": 0.95})
    assert run.cause == "test_acc 0.93 < 0.95"


def test_execution_input_overrides_epochs_and_dataset_in_the_training_requests(monkeypatch):
    run = _run(
        monkeypatch,
        Scenario(metrics={**PORTABLE_RULES_CLEAN, "test_acc": 0.93}),
        {"epochs": 2, "dataset_prefix": "datasets/flowers"},
    )
    retrain_input = run.state_inputs["Retrain"]
    assert retrain_input["final"]["hyperparameters"]["epochs"] == "2"
    assert retrain_input["final"]["hyperparameters"]["lr"] == "0.0012"  # the tuned value, merged in
    assert retrain_input["data_uri"] == "s3://imgclf-data/datasets/flowers"
    assert run.state_inputs["Tune"]["hyperparameters"]["tuning"]["epochs"] == "2"


@pytest.mark.parametrize(
    ("execution_input", "cause_start"),
    [
        ({"epochs": "five"}, "execution input epochs"),
        ({"epochs": 0}, "execution input epochs"),
        ({"dataset_prefix": "s3://other-bucket/data"}, "execution input dataset_prefix"),
        ({"dataset_prefix": 7}, "execution input dataset_prefix"),
        ({"min_test_accuracy": 1.5}, "execution input min_test_accuracy"),
    ],
)
def test_invalid_execution_input_is_refused_before_any_job_starts(monkeypatch, execution_input, cause_start):
    run = _run(monkeypatch, Scenario(), execution_input)
    assert (run.status, run.error) == ("FAILED", "InvalidInput")
    assert run.cause.startswith(cause_start)
    assert "Tune" not in run.visited


def test_managed_rules_with_issues_stop_the_run_with_the_rule_name(monkeypatch):
    scenario = Scenario(metrics={"test_acc": 0.93}, rule_statuses={"Overfit": "IssuesFound", "VanishingGradient": "NoIssuesFound"})
    run = _run(monkeypatch, scenario, debugger={"mode": "managed"})
    assert (run.status, run.cause) == ("FAILED", "rule Overfit found issues")


def test_a_managed_rule_that_ended_in_error_is_not_a_pass(monkeypatch):
    scenario = Scenario(metrics={"test_acc": 0.93}, rule_statuses={"Overfit": "NoIssuesFound", "LossNotDecreasing": "Error"})
    run = _run(monkeypatch, scenario, debugger={"mode": "managed"})
    assert run.status == "FAILED"
    assert run.cause.startswith("rule LossNotDecreasing ended in Error")


def test_managed_rules_without_issues_deploy(monkeypatch):
    scenario = Scenario(metrics={"test_acc": 0.93}, rule_statuses={"Overfit": "NoIssuesFound", "ProfilerReport": "NoIssuesFound"})
    run = _run(monkeypatch, scenario, debugger={"mode": "managed"})
    assert run.status == "SUCCEEDED", run.cause


def test_a_realtime_endpoint_gets_target_tracking_after_it_is_in_service(monkeypatch):
    run = _run(monkeypatch, Scenario(metrics={**PORTABLE_RULES_CLEAN, "test_acc": 0.93}), endpoint={"mode": "realtime"})
    assert run.status == "SUCCEEDED", run.cause
    assert run.visited.index("PutScalingPolicy") > run.visited.index("RegisterScaling") > run.visited.index("CheckEndpoint")
