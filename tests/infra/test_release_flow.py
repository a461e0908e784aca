"""The release part of the state machine in moto's Step Functions interpreter (see sfn_harness):
registration with evidence, manual approval, a deployment from an approved version (the approval
rule's and `imgclf rollback`'s input), and the blue/green DeploymentConfig of an update."""
from __future__ import annotations

import dataclasses
import json

from sfn_harness import Scenario, run_flow
from test_state_machine_flow import DEPLOYMENT, PORTABLE_RULES_CLEAN

from infra.config import load_config
from infra.layout import SERVING_PACKAGE_TAG, endpoint_name, model_package_group_name
from infra.registry import deployment_config
from infra.state_machine import build_definition
from training.evaluation import evaluation_uri

PASSING = Scenario(metrics={**PORTABLE_RULES_CLEAN, "test_acc": 0.93})


def _run(monkeypatch, scenario: Scenario, execution_input: dict | None = None, **config):
    cfg = load_config(config)
    return cfg, run_flow(monkeypatch, build_definition(cfg, DEPLOYMENT), scenario, execution_input, endpoint_name=endpoint_name(cfg))


def test_auto_approval_registers_the_evidence_and_a_blue_green_update_deploys_it(monkeypatch):
    cfg, run = _run(monkeypatch, dataclasses.replace(PASSING, endpoint_exists=True),
                    endpoint={"mode": "realtime"}, release={"canary_percent": 20, "bake_minutes": 5})
    assert run.status == "SUCCEEDED", run.cause
    (version,) = run.versions
    assert version["ModelApprovalStatus"] == "Approved"
    assert version["ModelPackageGroupName"] == model_package_group_name(cfg)
    assert run.output["model_package"] == version["ModelPackageArn"]
    assert version["CustomerMetadataProperties"]["training_job"] == run.output["training_job"]
    uri = version["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert uri == f"s3://{DEPLOYMENT.bucket_name}/runs/{run.output['training_job']}/evidence/metrics.json"
    evidence = json.loads(run.objects[uri.split("/", 3)[3]])
    # The evidence file holds the gate's metrics (test accuracy and every rule verdict) and provenance.
    assert {m["MetricName"]: m["Value"] for m in evidence["final_metrics"]} == PASSING.metrics
    assert evidence["training_job"] == run.output["training_job"] and evidence["execution"].startswith("arn:aws:states:")
    assert evidence["tuned_hyperparameters"] == {"lr": "0.0012", "batch-size": "64"}
    # It names the retrain's per-class test evaluation, which the job uploads beside it (training/evaluation.py).
    evaluation = f"s3://{DEPLOYMENT.bucket_name}/runs/{run.output['training_job']}/evidence/evaluation.json"
    assert evidence["evaluation_uri"] == evaluation
    (retrain,) = [r for r in run.requests["CreateTrainingJob"] if r["TrainingJobName"] == run.output["training_job"]]
    prefix = json.loads(retrain["HyperParameters"]["evaluation-prefix"])
    assert evaluation_uri(prefix, retrain["TrainingJobName"]) == evaluation
    # The update is blue/green, canary first, watched by the rollback alarms.
    (update,) = run.requests["UpdateEndpoint"]
    assert update["DeploymentConfig"] == deployment_config(cfg)
    routing = update["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20}, "WaitIntervalInSeconds": 300}
    assert run.endpoint_tags == {SERVING_PACKAGE_TAG: version["ModelPackageArn"]}


def test_manual_approval_registers_a_pending_version_and_ends_without_deploying(monkeypatch):
    _, run = _run(monkeypatch, PASSING, release={"approval": "manual"})
    assert (run.status, run.visited[-1]) == ("SUCCEEDED", "AwaitingApproval"), run.cause
    (version,) = run.versions
    assert version["ModelApprovalStatus"] == "PendingManualApproval"
    assert run.output["status"] == "PendingManualApproval" and run.output["model_package"] == version["ModelPackageArn"]
    assert "CreateModel" not in run.requests and run.endpoint is None


def test_an_input_naming_an_approved_version_deploys_it_and_trains_nothing(monkeypatch):
    _, run = _run(monkeypatch, Scenario(registered_version="Approved", endpoint_exists=True))
    assert run.status == "SUCCEEDED", run.cause
    assert "CreateHyperParameterTuningJob" not in run.requests and "CreateTrainingJob" not in run.requests
    (version,) = run.versions
    (model,) = run.requests["CreateModel"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == version["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert run.endpoint["EndpointConfigName"] == run.output["endpoint_config"]
    assert run.output["training_job"] == version["CustomerMetadataProperties"]["training_job"]
    assert run.output["hyperparameters"] == {"evidence": version["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]}
    assert run.endpoint_tags == {SERVING_PACKAGE_TAG: version["ModelPackageArn"]}


def test_a_version_that_is_not_approved_is_refused_before_anything_is_created(monkeypatch):
    _, run = _run(monkeypatch, Scenario(registered_version="PendingManualApproval"))
    assert (run.status, run.error) == ("FAILED", "InvalidInput")
    assert "cannot be deployed: only an Approved version" in run.cause
    assert "CreateModel" not in run.requests


def test_an_arn_of_another_group_is_refused_by_the_input_check(monkeypatch):
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/other-models/1"
    _, run = _run(monkeypatch, Scenario(), {"model_package_arn": arn})
    assert (run.status, run.error) == ("FAILED", "InvalidInput")
    assert run.cause.startswith("execution input model_package_arn must be the ARN of a version of the model package group imgclf-models")
