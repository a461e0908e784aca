"""Run the pipeline's definition in moto's Step Functions interpreter, for its flow logic.

moto cannot run `.sync` SageMaker tasks, so for these tests only each `.sync` task becomes its
create call followed by the matching describe call (what `.sync` does, minus the waiting), and Wait
states wait 0 s. SageMaker itself is moto's, with the outcome of a scenario (tuned values, final
metrics, rule statuses, endpoint outcome) laid over moto's describe responses, and an UpdateEndpoint
that moto lacks. Step Functions' SDK name of Application Auto Scaling is mapped to boto3's."""
from __future__ import annotations

import copy
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws
from moto.core.responses import ActionResult
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse

REGION = "us-east-1"
_DESCRIBE = {
    "createHyperParameterTuningJob": ("describeHyperParameterTuningJob", "HyperParameterTuningJobName"),
    "createTrainingJob": ("describeTrainingJob", "TrainingJobName"),
}


def without_sync(definition: dict) -> dict:
    """`.sync` task X -> X (create, result discarded) -> X.describe (X's selector, path and next)."""
    rewritten = copy.deepcopy(definition)
    states = rewritten["States"]
    for name, state in list(states.items()):
        if state.get("Type") == "Wait":
            state["Seconds"] = 0
        resource = state.get("Resource", "")
        # Step Functions names the service `applicationautoscaling`; moto looks it up as boto3 does.
        state["Resource"] = resource = resource.replace(":applicationautoscaling:", ":application-autoscaling:")
        if not resource.endswith(".sync"):
            continue
        action = resource.rsplit(":", 1)[1].removesuffix(".sync")
        describe, name_key = _DESCRIBE[action]
        params = state["Parameters"]
        job_name = params.get(f"{name_key}.$") or params[name_key]
        states[f"{name}.describe"] = {
            "Type": "Task",
            "Resource": f"arn:aws:states:::aws-sdk:sagemaker:{describe}",
            "Parameters": {f"{name_key}.$" if f"{name_key}.$" in params else name_key: job_name},
            **{k: state[k] for k in ("ResultSelector", "ResultPath", "Next", "End") if k in state},
        }
        state["Resource"] = resource.removesuffix(".sync")
        state["ResultPath"] = None
        state.pop("ResultSelector", None)
        state["Next"] = f"{name}.describe"
    return rewritten


@dataclass
class Scenario:
    """What SageMaker reports in one run."""

    tuned: dict[str, str] = field(default_factory=lambda: {"lr": "0.0012", "batch-size": "64"})
    metrics: dict[str, float] = field(default_factory=lambda: {"test_acc": 0.93, "valid_loss": 0.2})
    rule_statuses: dict[str, str] | None = None  # managed Debugger: rule -> RuleEvaluationStatus
    endpoint_exists: bool = False


@dataclass
class Run:
    status: str
    error: str | None
    cause: str | None
    output: dict | None
    state_inputs: dict[str, Any]  # state name -> its input (the last time it was entered)
    visited: list[str]
    endpoint: dict | None


def _patch_sagemaker(monkeypatch, scenario: Scenario) -> None:
    describe_training = SageMakerModelBackend.describe_training_job
    describe_tuning = SageMakerModelBackend.describe_hyper_parameter_tuning_job

    def training(self, training_job_name):
        job = dict(describe_training(self, training_job_name))
        job["FinalMetricDataList"] = [
            {"MetricName": k, "Value": v, "Timestamp": job["CreationTime"]} for k, v in scenario.metrics.items()
        ]
        job.setdefault("ModelArtifacts", {"S3ModelArtifacts": f"s3://bucket/runs/{training_job_name}/output/model.tar.gz"})
        if scenario.rule_statuses is not None:
            job["DebugRuleEvaluationStatuses"] = [
                {"RuleConfigurationName": rule, "RuleEvaluationStatus": status}
                for rule, status in scenario.rule_statuses.items()
            ]
        return job

    def tuning(self, hyper_parameter_tuning_job_name):
        job = dict(describe_tuning(self, hyper_parameter_tuning_job_name))
        job["BestTrainingJob"] = {
            **job["BestTrainingJob"],
            "TunedHyperParameters": scenario.tuned,
            "FinalHyperParameterTuningJobObjectiveMetric": {"Type": "Minimize", "MetricName": "valid_loss", "Value": 0.2},
        }
        return job

    def update_endpoint(self):
        backend = self.sagemaker_backend
        endpoint = backend.endpoints[self._get_param("EndpointName")]
        backend.describe_endpoint_config(self._get_param("EndpointConfigName"))
        endpoint.endpoint_config_name = self._get_param("EndpointConfigName")
        return ActionResult({"EndpointArn": endpoint.arn})

    monkeypatch.setattr(SageMakerModelBackend, "describe_training_job", training)
    monkeypatch.setattr(SageMakerModelBackend, "describe_hyper_parameter_tuning_job", tuning)
    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)


def _history(sfn, execution_arn: str) -> list[dict]:
    events, token = [], None
    while True:
        page = sfn.get_execution_history(executionArn=execution_arn, **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def run_flow(monkeypatch, definition: dict, scenario: Scenario, execution_input: dict | None = None, *, endpoint_name: str, timeout: float = 60) -> Run:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    _patch_sagemaker(monkeypatch, scenario)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        if scenario.endpoint_exists:
            _existing_endpoint(sagemaker, endpoint_name)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(
            name="pipeline", definition=json.dumps(without_sync(definition)), roleArn="arn:aws:iam::123456789012:role/states"
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, name=str(uuid.uuid4()), input=json.dumps(execution_input or {}))
        deadline = time.monotonic() + timeout
        while (described := sfn.describe_execution(executionArn=execution["executionArn"]))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not finish"
            time.sleep(0.05)
        events = _history(sfn, execution["executionArn"])
        entered = [e["stateEnteredEventDetails"] for e in events if "stateEnteredEventDetails" in e]
        try:
            endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
        except sagemaker.exceptions.ClientError:
            endpoint = None
        return Run(
            status=described["status"],
            error=described.get("error"),
            cause=described.get("cause"),
            output=json.loads(described["output"]) if described.get("output") else None,
            state_inputs={e["name"]: json.loads(e["input"]) for e in entered},
            visited=[e["name"] for e in entered],
            endpoint=endpoint,
        )


def _existing_endpoint(sagemaker, endpoint_name: str) -> None:
    sagemaker.create_model(
        ModelName="previous-model",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1", "ModelDataUrl": "s3://b/m.tar.gz"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="previous-config",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "previous-model", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
    )
    sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName="previous-config")
