"""`imgclf status` reads an execution and its SageMaker jobs; AWS-shaped responses via Stubber
(moto runs no `.sync` SageMaker tasks, so it has no such history or jobs to describe)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber

from imgclf.cloud.status import describe

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:imgclf-pipeline"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:imgclf-pipeline:1a2b3c4d-0000-1111-2222-333344445555"
OUTPUTS = {"EndpointName": "imgclf-endpoint", "ApiUrl": "https://abc.execute-api.us-east-1.amazonaws.com/prod/predict"}


def _event(i, kind, **details):
    return {"timestamp": T0, "type": kind, "id": i, "previousEventId": i - 1, **details}


def _scheduled(i, resource, params):
    return _event(i, "TaskScheduled", taskScheduledEventDetails={
        "resourceType": "sagemaker", "resource": resource, "region": "us-east-1", "parameters": json.dumps(params)})


def _entered(i, name, kind="TaskStateEntered"):
    return _event(i, kind, stateEnteredEventDetails={"name": name})


def _clients(status, events, tuning=None, training=None, **execution):
    sfn = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sagemaker = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sfn_stub, sm_stub = Stubber(sfn), Stubber(sagemaker)
    sfn_stub.add_response("describe_execution", {"executionArn": EXECUTION, "stateMachineArn": MACHINE, "status": status,
                                                 "startDate": T0, **execution})
    sfn_stub.add_response("get_execution_history", {"events": events})
    if tuning:
        sm_stub.add_response("describe_hyper_parameter_tuning_job", tuning, {"HyperParameterTuningJobName": tuning["HyperParameterTuningJobName"]})
    if training:
        sm_stub.add_response("describe_training_job", training, {"TrainingJobName": training["TrainingJobName"]})
    sfn_stub.activate()
    sm_stub.activate()
    return sfn, sagemaker


def _tuning(name="imgclf-1a2b3c4d-tune", completed=2, running=2, best=0.3100):
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{name}",
        "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {"MaxParallelTrainingJobs": 2}},
        "HyperParameterTuningJobStatus": "InProgress",
        "CreationTime": T0,
        "TrainingJobStatusCounters": {"Completed": completed, "InProgress": running, "RetryableError": 0,
                                      "NonRetryableError": 1, "Stopped": 0},
        "ObjectiveStatusCounters": {"Succeeded": completed, "Pending": running, "Failed": 1},
        "BestTrainingJob": {
            "TrainingJobName": f"{name}-003-abcd1234",
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}-003-abcd1234",
            "CreationTime": T0,
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {"lr": "0.0012", "batch-size": "64"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"Type": "Minimize", "MetricName": "valid_loss", "Value": best},
        },
    }


def _training(name="imgclf-1a2b3c4d-final", status="Completed", overfit=0.0):
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://bucket/jobs/{name}/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": T0,
        "FinalMetricDataList": [{"MetricName": "test_acc", "Value": 0.91, "Timestamp": T0},
                                {"MetricName": "rule_Overfit", "Value": overfit, "Timestamp": T0}],
    }


def test_a_running_tuning_job_shows_its_progress_and_best_objective_so_far():
    events = [_entered(2, "Tune"), _scheduled(3, "createHyperParameterTuningJob.sync", {"HyperParameterTuningJobName": "imgclf-1a2b3c4d-tune"})]
    status = describe(*_clients("RUNNING", events, tuning=_tuning()), EXECUTION, OUTPUTS)
    assert status.lines[0] == f"execution {EXECUTION}: RUNNING (in Tune)"
    assert "2 completed, 2 running, 0 stopped, 1 failed" in status.lines[1]
    assert "best valid_loss 0.3100 (imgclf-1a2b3c4d-tune-003-abcd1234: lr=0.0012 batch-size=64)" in status.lines[1]


def test_a_gate_failure_shows_the_rule_verdicts_and_the_fail_cause():
    events = [
        _scheduled(3, "createHyperParameterTuningJob.sync", {"HyperParameterTuningJobName": "imgclf-1a2b3c4d-tune"}),
        _scheduled(9, "createTrainingJob.sync", {"TrainingJobName": "imgclf-1a2b3c4d-final"}),
        _entered(12, "RuleFailed_Overfit", "FailStateEntered"),
        _event(13, "ExecutionFailed", executionFailedEventDetails={"error": "GateFailed", "cause": "rule Overfit found issues"}),
    ]
    clients = _clients("FAILED", events, tuning=_tuning(running=0), training=_training(overfit=1.0),
                       error="GateFailed", cause="rule Overfit found issues", stopDate=T0)
    lines = describe(*clients, EXECUTION, OUTPUTS).lines
    assert "  rules: Overfit IssuesFound" in lines and "  test_acc 0.9100" in lines
    assert lines[-1] == "failed in state RuleFailed_Overfit: GateFailed: rule Overfit found issues"


def test_a_succeeded_execution_shows_the_endpoint_and_the_api_url():
    events = [_scheduled(9, "createTrainingJob.sync", {"TrainingJobName": "imgclf-1a2b3c4d-final"}),
              _event(30, "ExecutionSucceeded", executionSucceededEventDetails={"output": "{}"})]
    lines = describe(*_clients("SUCCEEDED", events, training=_training(), stopDate=T0), EXECUTION, OUTPUTS).lines
    assert "endpoint imgclf-endpoint is InService" in lines
    assert f"API: {OUTPUTS['ApiUrl']}" in lines


@pytest.mark.parametrize("status", ["RUNNING", "SUCCEEDED"])
def test_an_execution_without_sagemaker_jobs_yet_has_no_job_lines(status):
    lines = describe(*_clients(status, [_entered(2, "ValidateInput", "ChoiceStateEntered")]), EXECUTION, OUTPUTS).lines
    assert not any(line.startswith(("tuning job", "training job")) for line in lines)
