"""The state machine's flow logic, executed by moto's Step Functions interpreter (see sfn_harness)."""
from __future__ import annotations

import re

import pytest
from sfn_harness import Scenario, run_flow

from infra.config import load_config
from infra.layout import endpoint_name
from infra.state_machine import Deployment, build_definition

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


# Every value a user can type is in test_run_input's table; these are JSON only a direct
# StartExecution can send.
@pytest.mark.parametrize(
    ("execution_input", "cause_start"),
    [
        ({"dataset_prefix": 7}, "execution input dataset_prefix"),
        ({"epochs": [3]}, "execution input epochs"),
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


CLEAN = {**PORTABLE_RULES_CLEAN, "test_acc": 0.93}


def test_a_failed_tuning_job_stops_the_run_with_its_failure_reason(monkeypatch):
    reason = "No training job succeeded after 5 attempts. Please take a look at the training job failures to get more details."
    run = _run(monkeypatch, Scenario(tuning_status="Failed", failure_reason=reason))
    assert (run.status, run.error) == ("FAILED", "TrainingFailed")
    tuning_job = run.state_inputs["Tune"]["names"]["tuning_job"]
    assert run.cause == f"tuning job {tuning_job} ended Failed: {reason}"
    assert "Retrain" not in run.visited


def test_a_failed_retrain_stops_the_run_with_its_failure_reason(monkeypatch):
    reason = "AlgorithmError: ExecuteUserScriptError: CUDA out of memory"
    run = _run(monkeypatch, Scenario(metrics=CLEAN, training_status="Failed", failure_reason=reason))
    training_job = run.state_inputs["Retrain"]["names"]["training_job"]
    assert (run.status, run.error, run.cause) == ("FAILED", "TrainingFailed", f"training job {training_job} ended Failed: {reason}")
    assert "CreateModel" not in run.visited


def test_a_stopped_retrain_without_a_reason_still_ends_in_a_clear_fail(monkeypatch):
    run = _run(monkeypatch, Scenario(metrics=CLEAN, training_status="Stopped"))
    assert run.error == "TrainingFailed"
    assert run.cause.endswith("ended Stopped: SageMaker gave no FailureReason")


def test_a_refused_create_model_ends_in_a_fail_naming_the_call(monkeypatch):
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import SageMakerModelBackend

    def refuse(self, **kwargs):
        raise ValidationError(message="Could not access model data at s3://imgclf-data/runs/x/model.tar.gz")

    monkeypatch.setattr(SageMakerModelBackend, "create_model", refuse)
    run = _run(monkeypatch, Scenario(metrics=CLEAN))
    assert (run.status, run.error) == ("FAILED", "DeployFailed")
    assert run.cause.startswith("CreateModel failed: ")
    assert "Could not access model data at s3://imgclf-data/runs/x/model.tar.gz" in run.cause


def test_an_endpoint_still_updating_is_waited_for_before_the_update(monkeypatch):
    scenario = Scenario(metrics=CLEAN, endpoint_exists=True, existing_statuses=("Updating", "SystemUpdating", "InService"))
    run = _run(monkeypatch, scenario)
    assert run.status == "SUCCEEDED", run.cause
    assert run.visited.count("WaitForExistingEndpoint") == 2
    assert run.visited.index("UpdateEndpoint") > run.visited.index("WaitForExistingEndpoint")


@pytest.mark.parametrize("status", ["Failed", "UpdateRollbackFailed", "OutOfService"])
def test_an_existing_endpoint_that_cannot_be_updated_stops_the_run_saying_to_delete_it(monkeypatch, status):
    run = _run(monkeypatch, Scenario(metrics=CLEAN, endpoint_exists=True, existing_statuses=(status,)))
    assert (run.status, run.error) == ("FAILED", "DeployFailed")
    assert run.cause.startswith(f"endpoint imgclf-endpoint is {status} and cannot be updated: delete it ")
    assert "aws sagemaker delete-endpoint --endpoint-name imgclf-endpoint" in run.cause
    assert "UpdateEndpoint" not in run.visited


@pytest.mark.parametrize(
    ("outcome", "reason", "cause"),
    [
        ("Failed", "Image size too large", "endpoint imgclf-endpoint is Failed: Image size too large"),
        ("Failed", None, "endpoint imgclf-endpoint is Failed: SageMaker gave no FailureReason"),
        ("UpdateRollbackFailed", None, "endpoint update rollback failed: imgclf-endpoint is UpdateRollbackFailed: SageMaker gave no FailureReason; delete it"),
        ("RolledBack", "ping health check failed", "endpoint update rolled back: imgclf-endpoint still serves previous-config: ping health check failed"),
        ("RolledBack", None, "endpoint update rolled back: imgclf-endpoint still serves previous-config: SageMaker gave no FailureReason"),
    ],
)
def test_a_failed_update_ends_in_a_fail_with_the_reason_or_a_stand_in(monkeypatch, outcome, reason, cause):
    scenario = Scenario(metrics=CLEAN, endpoint_exists=True, endpoint_outcome=outcome, endpoint_failure_reason=reason)
    run = _run(monkeypatch, scenario)
    assert (run.status, run.error) == ("FAILED", "DeployFailed")
    assert run.cause.startswith(cause)


def test_a_rolled_back_realtime_update_re_registers_auto_scaling_before_failing(monkeypatch):
    scenario = Scenario(metrics=CLEAN, endpoint_exists=True, endpoint_outcome="RolledBack", endpoint_failure_reason="health check")
    run = _run(monkeypatch, scenario, endpoint={"mode": "realtime"})
    assert run.cause.startswith("endpoint update rolled back")
    assert run.visited.index("PutScalingPolicy") > run.visited.index("RegisterScaling") > run.visited.index("UpdateRolledBack")
    assert [t["ResourceId"] for t in run.scalable_targets] == ["endpoint/imgclf-endpoint/variant/AllTraffic"]


def test_a_managed_rule_that_was_stopped_is_not_a_pass(monkeypatch):
    scenario = Scenario(metrics={"test_acc": 0.93}, rule_statuses={"Overfit": "Stopped", "VanishingGradient": "NoIssuesFound"})
    run = _run(monkeypatch, scenario, debugger={"mode": "managed"})
    assert (run.status, run.error) == ("FAILED", "GateFailed")
    assert run.cause == "rule Overfit was stopped: no verdict, so no deployment"


def test_managed_rules_still_in_progress_are_polled_until_their_verdict(monkeypatch):
    statuses = [{"Overfit": "InProgress"}, {"Overfit": "InProgress"}, {"Overfit": "InProgress"}, {"Overfit": "IssuesFound"}]
    run = _run(monkeypatch, Scenario(metrics={"test_acc": 0.93}, rule_statuses=statuses), debugger={"mode": "managed"})
    assert run.cause == "rule Overfit found issues"
    assert run.visited.count("DescribeRules") == 3


@pytest.mark.parametrize("execution_name", ["nightly_run", "a" * 80, "x.y-z"])
def test_any_execution_name_gives_valid_job_names(monkeypatch, execution_name):
    cfg = load_config({})
    run = run_flow(
        monkeypatch, build_definition(cfg, DEPLOYMENT), Scenario(metrics=CLEAN),
        endpoint_name=endpoint_name(cfg), execution_name=execution_name,
    )
    assert run.status == "SUCCEEDED", run.cause
    names = run.output
    assert re.fullmatch(r"imgclf-[0-9a-f]{8}-tune", names["tuning_job"])
    assert all(re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", names[k]) for k in ("model", "endpoint_config", "training_job"))


# --- the endpoint's kind: a real-time endpoint cannot be updated to serverless ---------------------
def test_a_serverless_stack_over_a_realtime_endpoint_stops_before_training_with_the_steps(monkeypatch):
    run = _run(monkeypatch, Scenario(metrics=CLEAN, endpoint_exists=True, existing_mode="realtime"))
    assert (run.status, run.error) == ("FAILED", "DeployFailed")
    assert run.cause.startswith("endpoint imgclf-endpoint is real-time, but endpoint.mode is now serverless")
    assert "aws sagemaker delete-endpoint --endpoint-name imgclf-endpoint" in run.cause
    assert "deregister-scalable-target --service-namespace sagemaker --resource-id endpoint/imgclf-endpoint/variant/AllTraffic" in run.cause
    assert "Tune" not in run.visited and "CreateHyperParameterTuningJob" not in run.requests


# --- retries: only what created nothing, under the run's fixed names ------------------------------
def _refuse(monkeypatch, method: str, code: str, message: str, times: int = 1_000) -> None:
    """SageMaker refuses `method` with `code` the first `times` calls."""
    from moto.core.exceptions import JsonRESTError
    from moto.sagemaker.models import SageMakerModelBackend

    real, calls = getattr(SageMakerModelBackend, method), []

    def refusing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) <= times:
            raise JsonRESTError(code, message)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SageMakerModelBackend, method, refusing)


def test_a_refused_create_is_not_called_again_under_its_fixed_name(monkeypatch):
    _refuse(monkeypatch, "create_model", "ValidationException", "Could not access model data")
    run = _run(monkeypatch, Scenario(metrics=CLEAN))
    assert (run.error, run.cause.split(" (Service")[0]) == ("DeployFailed", "CreateModel failed: Could not access model data")
    assert len(run.requests["CreateModel"]) == 1


def test_a_throttled_create_is_called_again_and_the_run_deploys(monkeypatch):
    _refuse(monkeypatch, "create_model", "ThrottlingException", "Rate exceeded", times=1)
    run = _run(monkeypatch, Scenario(metrics=CLEAN))
    assert run.status == "SUCCEEDED", run.cause
    assert len(run.requests["CreateModel"]) == 2 and "CreateModelAfterThrottling" in run.visited
    assert run.state_inputs["CreateEndpointConfig"]["throttled"] == {"count": 1}


def test_a_first_run_over_the_spot_training_quota_ends_naming_the_quota_and_the_instance_type(monkeypatch):
    said = ("The account-level service limit 'ml.g4dn.xlarge for spot training job usage' is 0 Instances, with current "
            "utilization of 0 Instances and a request delta of 2 Instances.")
    _refuse(monkeypatch, "create_hyper_parameter_tuning_job", "ResourceLimitExceeded", said)
    run = _run(monkeypatch, Scenario(metrics=CLEAN))
    assert (run.status, run.error) == ("FAILED", "TrainingFailed")
    assert run.cause.startswith(
        'Tune failed: SageMaker refused it for a quota: "ml.g4dn.xlarge for spot training job usage" must allow '
        "2 instance(s) at once (training.tuning_instance_type = ml.g4dn.xlarge, tuning.max_parallel_jobs = 2, "
        "training.spot = true). Request an increase in the Service Quotas console"
    )
    assert said in run.cause
    assert len(run.requests["CreateHyperParameterTuningJob"]) == 1


# --- members botocore marks optional: every absence still ends in a Fail with a cause ------------
@pytest.mark.parametrize(
    ("omitted", "config", "error", "cause"),
    [
        ("BestTrainingJob", {}, "TrainingFailed", "tuning job {tuning_job} ended without a best training job: no trial reported valid_loss"),
        ("FinalMetricDataList", {}, "GateFailed", "rule_VanishingGradient was not reported by the training job: no verdict, so no deployment"),
        ("DebugRuleEvaluationStatuses", {"debugger": {"mode": "managed"}}, "GateFailed",
         "training job {training_job} reports no rule evaluations: no verdict, so no deployment"),
        ("EndpointConfigName", {}, "DeployFailed",
         "endpoint imgclf-endpoint is InService but DescribeEndpoint names no EndpointConfigName, so this run cannot tell "
         "whether it serves {endpoint_config}: see aws sagemaker describe-endpoint --endpoint-name imgclf-endpoint"),
    ],
)
def test_a_missing_optional_member_ends_the_run_in_a_fail_with_a_cause(monkeypatch, omitted, config, error, cause):
    scenario = Scenario(metrics=CLEAN, rule_statuses={"Overfit": "NoIssuesFound"}, omitted=(omitted,))
    run = _run(monkeypatch, scenario, **config)
    names = run.state_inputs["Tune"]["names"]
    assert (run.status, run.error, run.cause) == ("FAILED", error, cause.format(**names))


def test_a_best_training_job_without_its_objective_metric_still_deploys(monkeypatch):
    run = _run(monkeypatch, Scenario(metrics=CLEAN, omitted=("FinalHyperParameterTuningJobObjectiveMetric",)))
    assert run.status == "SUCCEEDED", run.cause


# --- Hyperband's epoch budget follows the run's epochs --------------------------------------------
def test_hyperbands_max_resource_is_the_executions_epochs(monkeypatch):
    run = _run(
        monkeypatch, Scenario(metrics=CLEAN), {"epochs": 2},
        tuning={"strategy": "Hyperband", "early_stopping": "Off"}, training={"epochs": 7},
    )
    (request,) = run.requests["CreateHyperParameterTuningJob"]
    assert request["HyperParameterTuningJobConfig"]["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 2}}
    assert request["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] == "2"
