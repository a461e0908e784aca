"""Run the pipeline's definition in moto's Step Functions interpreter, for its flow logic.

moto cannot run `.sync` SageMaker tasks, so for these tests only each `.sync` task becomes a
one-branch Parallel state: the create call, then the matching describe call (what `.sync` does,
minus the waiting), and a job that ended Failed or Stopped fails the branch with the Describe response
as the cause, as `.sync` fails the task. The Parallel keeps the task's retries and catches; a Pass
after it applies the task's selector and result path. Wait states wait 0 s; retries wait 1 s, once.
SageMaker itself is moto's, with the outcome of a scenario (tuned values, final metrics, rule
statuses, endpoint outcome, optional members left out) laid over moto's describe responses, and an
UpdateEndpoint that moto lacks. Step Functions' SDK name of Application Auto Scaling is mapped to
boto3's, and errors are named as Step Functions names them: SDK integrations
`<Service>.<Code>Exception`; the optimised SageMaker integration its modelled errors
(`SageMaker.ResourceLimitExceededException`) and `SageMaker.AmazonSageMakerException` for every
other, with the error code in the cause. Every SageMaker request is recorded."""
from __future__ import annotations

import copy
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws
from moto.applicationautoscaling.models import ApplicationAutoscalingBackend
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.stepfunctions.parser.asl.component.intrinsic.function.statesfunction.json_manipulation import json_to_string
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_aws_sdk
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import StateTaskServiceAwsSdk

REGION = "us-east-1"
#: The config of the endpoint that a scenario with `endpoint_exists` starts with.
_PREVIOUS_CONFIG = "previous-config"
_DESCRIBE = {
    "createHyperParameterTuningJob": ("describeHyperParameterTuningJob", "HyperParameterTuningJobName", "HyperParameterTuningJobStatus"),
    "createTrainingJob": ("describeTrainingJob", "TrainingJobName", "TrainingJobStatus"),
}


def _sync_as_parallel(name: str, state: dict) -> dict:
    action = state["Resource"].rsplit(":", 1)[1].removesuffix(".sync")
    describe, name_key, status_key = _DESCRIBE[action]
    params = state["Parameters"]
    name_param = f"{name_key}.$" if f"{name_key}.$" in params else name_key
    branch = {
        "StartAt": "create",
        "States": {
            "create": {"Type": "Task", "Resource": state["Resource"].removesuffix(".sync"), "Parameters": params, "ResultPath": None, "Next": "describe"},
            "describe": {"Type": "Task", "Resource": f"arn:aws:states:::aws-sdk:sagemaker:{describe}", "Parameters": {name_param: params[name_param]}, "Next": "ended?"},
            "ended?": {
                "Type": "Choice",
                "Choices": [{"Or": [{"Variable": f"$.{status_key}", "StringEquals": s} for s in ("Failed", "Stopped")], "Next": "job failed"}],
                "Default": "job completed",
            },
            "job failed": {"Type": "Fail", "Error": "JobFailed", "CausePath": "States.JsonToString($)"},
            "job completed": {"Type": "Pass", "End": True},
        },
    }
    # moto returns `$[0].Field` as a one-element list, so the task's selector runs in a Pass after.
    parallel = {
        "Type": "Parallel",
        "Branches": [branch],
        "ResultSelector": {"described.$": "$[0]"},
        "ResultPath": "$.sync",
        "Next": f"{name}.select",
        **{k: state[k] for k in ("Retry", "Catch") if k in state},
    }
    if "ResultSelector" in state:
        selector = {k: v.replace("$", "$.sync.described", 1) if k.endswith(".$") else v for k, v in state["ResultSelector"].items()}
        select = {"Type": "Pass", "Parameters": selector}
    else:  # the whole Describe response is the result
        select = {"Type": "Pass", "InputPath": "$.sync.described"}
    select.update({k: state[k] for k in ("ResultPath", "Next", "End") if k in state})
    return {name: parallel, f"{name}.select": select}


def ending_at(definition: dict, state: str) -> dict:
    """`definition` with `state` made the end: a run that reaches it succeeds there (its output
    names the state), so a test of the states before it does not run the rest."""
    ended = copy.deepcopy(definition)
    ended["States"][state] = {"Type": "Pass", "Result": {"ended_at": state}, "End": True}
    return ended


def without_sync(definition: dict) -> dict:
    """Every `.sync` task as a Parallel state that creates, describes and fails as `.sync` would."""
    rewritten = copy.deepcopy(definition)
    states = rewritten["States"]
    for name, state in list(states.items()):
        if state.get("Type") == "Wait":
            state["Seconds"] = 0
        _fast_retries(state)
        if "Resource" not in state:
            continue
        # Step Functions names the service `applicationautoscaling`; moto looks it up as boto3 does.
        state["Resource"] = state["Resource"].replace(":applicationautoscaling:", ":application-autoscaling:")
        if state["Resource"].endswith(".sync"):
            states.update(_sync_as_parallel(name, state))
    return rewritten


@dataclass
class Scenario:
    """What SageMaker reports in one run."""

    tuned: dict[str, str] = field(default_factory=lambda: {"lr": "0.0012", "batch-size": "64"})
    metrics: dict[str, float] = field(default_factory=lambda: {"test_acc": 0.93, "valid_loss": 0.2})
    #: managed Debugger: rule -> RuleEvaluationStatus, or one such dict per DescribeTrainingJob call
    #: (the last one repeats), for rules still InProgress when the job completes.
    rule_statuses: dict[str, str] | list[dict[str, str]] | None = None
    #: How the jobs end; a failed or stopped job reports `failure_reason` (None: no FailureReason).
    tuning_status: str = "Completed"
    training_status: str = "Completed"
    failure_reason: str | None = None
    endpoint_exists: bool = False
    #: What the existing endpoint reports to successive DescribeEndpoint calls before the update.
    existing_statuses: tuple[str, ...] = ("InService",)
    #: How this run's create or update ends: InService, Failed, UpdateRollbackFailed or RolledBack
    #: (InService, still on the previous config), with `endpoint_failure_reason` (None: none given).
    endpoint_outcome: str = "InService"
    endpoint_failure_reason: str | None = None
    #: The existing endpoint's kind, "serverless" or "realtime"; None: the kind the definition deploys.
    existing_mode: str | None = None
    #: Members botocore marks optional that the describe responses leave out: BestTrainingJob,
    #: FinalHyperParameterTuningJobObjectiveMetric, FinalMetricDataList, DebugRuleEvaluationStatuses,
    #: EndpointConfigName (of this run's endpoint).
    omitted: tuple[str, ...] = ()
    #: A version of the stack's model package group registered before the run, with this approval
    #: status; the execution input then names it (a deployment without training). None: none.
    registered_version: str | None = None
    #: That version's model data (None: a stand-in).
    registered_model_data: str | None = None


@dataclass
class Run:
    status: str
    error: str | None
    cause: str | None
    output: dict | None
    state_inputs: dict[str, Any]  # state name -> its input (the last time it was entered)
    visited: list[str]
    endpoint: dict | None
    scalable_targets: list[dict]
    #: SageMaker action -> the request of each call, in order.
    requests: dict[str, list[dict]]
    #: The model package group's versions after the run (DescribeModelPackage of each).
    versions: list[dict] = field(default_factory=list)
    #: The endpoint's tags after the run.
    endpoint_tags: dict[str, str] = field(default_factory=dict)
    #: What the run wrote to the pipeline bucket: key -> text.
    objects: dict[str, str] = field(default_factory=dict)


class _DatesAsText:
    """moto hands its interpreter boto's datetime objects, which States.JsonToString cannot
    encode; Step Functions itself holds JSON timestamps."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, default=str, **kwargs)


def _ended(job: dict, status_key: str, status: str, reason: str | None) -> dict:
    job[status_key] = status
    if status != "Completed" and reason is not None:
        job["FailureReason"] = reason
    return job


def _patch_scaling(monkeypatch) -> None:
    """Application Auto Scaling answers a missing target with ObjectNotFoundException (its API
    reference); moto answers ValidationException."""
    deregister = ApplicationAutoscalingBackend.deregister_scalable_target

    def deregister_or_not_found(self, namespace, r_id, dimension):
        if not self._scalable_target_exists(r_id, dimension):
            raise JsonRESTError("ObjectNotFoundException", f"No scalable target found for {r_id}")
        return deregister(self, namespace, r_id, dimension)

    monkeypatch.setattr(ApplicationAutoscalingBackend, "deregister_scalable_target", deregister_or_not_found)


def _fast_retries(state: dict) -> None:
    """Retries wait 1 s, once: the flow, not the back-off, is under test."""
    for retrier in state.get("Retry", []):
        retrier.update(IntervalSeconds=1, MaxAttempts=min(retrier.get("MaxAttempts", 3), 1), BackoffRate=1.0)


def _patch_sagemaker(monkeypatch, scenario: Scenario) -> None:
    describe_training = SageMakerModelBackend.describe_training_job
    describe_tuning = SageMakerModelBackend.describe_hyper_parameter_tuning_job
    describe_endpoint = SageMakerModelBackend.describe_endpoint
    rule_statuses = scenario.rule_statuses if isinstance(scenario.rule_statuses, list) else [scenario.rule_statuses]
    calls = {"training": 0, "existing": 0}
    deployed: set[str] = set()  # endpoints this run created or updated

    def training(self, training_job_name):
        job = dict(describe_training(self, training_job_name))
        job["FinalMetricDataList"] = [
            {"MetricName": k, "Value": v, "Timestamp": job["CreationTime"]} for k, v in scenario.metrics.items()
        ]
        job.setdefault("ModelArtifacts", {"S3ModelArtifacts": f"s3://bucket/runs/{training_job_name}/output/model.tar.gz"})
        statuses = rule_statuses[min(calls["training"], len(rule_statuses) - 1)]
        calls["training"] += 1
        if statuses is not None:
            job["DebugRuleEvaluationStatuses"] = [
                {"RuleConfigurationName": rule, "RuleEvaluationStatus": status} for rule, status in statuses.items()
            ]
        _omit(job, scenario.omitted, ("FinalMetricDataList", "DebugRuleEvaluationStatuses"))
        return _ended(job, "TrainingJobStatus", scenario.training_status, scenario.failure_reason)

    def tuning(self, hyper_parameter_tuning_job_name):
        job = dict(describe_tuning(self, hyper_parameter_tuning_job_name))
        job["BestTrainingJob"] = {
            **job["BestTrainingJob"],
            "TunedHyperParameters": scenario.tuned,
            "FinalHyperParameterTuningJobObjectiveMetric": {"Type": "Minimize", "MetricName": "valid_loss", "Value": 0.2},
        }
        _omit(job["BestTrainingJob"], scenario.omitted, ("FinalHyperParameterTuningJobObjectiveMetric",))
        _omit(job, scenario.omitted, ("BestTrainingJob",))
        return _ended(job, "HyperParameterTuningJobStatus", scenario.tuning_status, scenario.failure_reason)

    def endpoint(self, endpoint_name):
        described = dict(describe_endpoint(self, endpoint_name))
        if endpoint_name not in deployed:
            statuses = scenario.existing_statuses
            described["EndpointStatus"] = statuses[min(calls["existing"], len(statuses) - 1)]
            # A look before the training (the mode check) sees the first status; the ones after it,
            # where the deployment waits, go on from there.
            calls["existing"] += calls["training"] > 0
            return described
        if scenario.endpoint_outcome != "InService":
            described["EndpointStatus"] = "InService" if scenario.endpoint_outcome == "RolledBack" else scenario.endpoint_outcome
            if scenario.endpoint_failure_reason is not None:
                described["FailureReason"] = scenario.endpoint_failure_reason
        _omit(described, scenario.omitted, ("EndpointConfigName",))
        return described

    def create_endpoint(self):
        if self._get_param("EndpointConfigName") != _PREVIOUS_CONFIG:
            deployed.add(self._get_param("EndpointName"))
        return create_endpoint_response(self)

    def update_endpoint(self):
        backend = self.sagemaker_backend
        endpoint = backend.endpoints[self._get_param("EndpointName")]
        backend.describe_endpoint_config(self._get_param("EndpointConfigName"))
        deployed.add(self._get_param("EndpointName"))
        if scenario.endpoint_outcome != "RolledBack":
            endpoint.endpoint_config_name = self._get_param("EndpointConfigName")
        return ActionResult({"EndpointArn": endpoint.arn})

    create_endpoint_response = SageMakerResponse.create_endpoint
    monkeypatch.setattr(json_to_string, "json", _DatesAsText)
    # Error names as Step Functions gives them (ApplicationAutoScaling.ObjectNotFoundException, ...).
    monkeypatch.setitem(state_task_service_aws_sdk._SERVICE_ERROR_NAMES, "sagemaker", "SageMaker")
    monkeypatch.setitem(state_task_service_aws_sdk._SERVICE_ERROR_NAMES, "application-autoscaling", "ApplicationAutoScaling")
    monkeypatch.setattr(SageMakerModelBackend, "describe_training_job", training)
    monkeypatch.setattr(SageMakerModelBackend, "describe_hyper_parameter_tuning_job", tuning)
    monkeypatch.setattr(SageMakerModelBackend, "describe_endpoint", endpoint)
    monkeypatch.setattr(SageMakerResponse, "create_endpoint", create_endpoint)
    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)


def _omit(response: dict, omitted: tuple[str, ...], members: tuple[str, ...]) -> None:
    for member in members:
        if member in omitted:
            response.pop(member, None)


def _name_optimised_errors(monkeypatch) -> None:
    """moto runs the optimised SageMaker integration as a plain boto3 call and reports its errors
    as States.Runtime. Step Functions names them as AWS's .sync example catches them: a modelled
    error by its name, every other as SageMaker.AmazonSageMakerException, with the Java SDK's
    "(Service: ...; Error Code: ...)" in the cause."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported import (
        StateTaskServiceUnsupported,
    )

    modelled = {"ResourceLimitExceeded", "ResourceInUse", "ResourceNotFound", "Conflict"}
    from_error = StateTaskServiceUnsupported._from_error

    def named(self, env, ex):
        if not isinstance(ex, ClientError):
            return from_error(self, env, ex)
        code, message = ex.response["Error"]["Code"], ex.response["Error"]["Message"]
        status = ex.response["ResponseMetadata"]["HTTPStatusCode"]
        error = f"SageMaker.{code}Exception" if code in modelled else "SageMaker.AmazonSageMakerException"
        cause = f"{message} (Service: AmazonSageMaker; Status Code: {status}; Error Code: {code}; Request ID: 0; Proxy: null)"
        return StateTaskServiceAwsSdk._get_task_failure_event(self, env, error, cause)

    monkeypatch.setattr(StateTaskServiceUnsupported, "_from_error", named)


def _record_requests(monkeypatch, requests: dict[str, list[dict]]) -> None:
    call_action = SageMakerResponse.call_action

    def recorded(self):
        requests.setdefault(self._get_action(), []).append(json.loads(self.body or b"{}"))
        return call_action(self)

    monkeypatch.setattr(SageMakerResponse, "call_action", recorded)


def _history(sfn, execution_arn: str) -> list[dict]:
    events, token = [], None
    while True:
        page = sfn.get_execution_history(executionArn=execution_arn, **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def run_flow(
    monkeypatch,
    definition: dict,
    scenario: Scenario,
    execution_input: dict | None = None,
    *,
    endpoint_name: str,
    execution_name: str | None = None,
    timeout: float = 60,
) -> Run:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    _patch_sagemaker(monkeypatch, scenario)
    _patch_scaling(monkeypatch)
    _name_optimised_errors(monkeypatch)
    requests: dict[str, list[dict]] = {}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        if scenario.endpoint_exists:
            _existing_endpoint(sagemaker, endpoint_name, scenario.existing_mode or _deployed_mode(definition))
        group = _registry(definition)
        if scenario.registered_version:
            arn = register_version(sagemaker, group, scenario.registered_version, scenario.registered_model_data)
            execution_input = {"model_package_arn": arn, **(execution_input or {})}
        _record_requests(monkeypatch, requests)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(
            name="pipeline", definition=json.dumps(without_sync(definition)), roleArn="arn:aws:iam::123456789012:role/states"
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, name=execution_name or str(uuid.uuid4()), input=json.dumps(execution_input or {}))
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
        scaling = boto3.client("application-autoscaling", region_name=REGION)
        targets = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
        versions = [sagemaker.describe_model_package(ModelPackageName=v["ModelPackageArn"])
                    for v in sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]]
        tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]} if endpoint else {}
        bucket = definition["States"]["WriteEvidence"]["Parameters"]["Bucket"]
        s3 = boto3.client("s3", region_name=REGION)
        objects = {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode()
                   for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
        return Run(
            objects=objects,
            versions=versions,
            endpoint_tags=tags,
            status=described["status"],
            error=described.get("error"),
            cause=described.get("cause"),
            output=json.loads(described["output"]) if described.get("output") else None,
            state_inputs={e["name"]: json.loads(e["input"]) for e in entered},
            visited=[e["name"] for e in entered],
            endpoint=endpoint,
            scalable_targets=targets,
            requests=requests,
        )


def _deployed_mode(definition: dict) -> str:
    """The kind of endpoint `definition` deploys, read from its CreateEndpointConfig."""
    (variant,) = definition["States"]["CreateEndpointConfig"]["Parameters"]["ProductionVariants"]
    return "serverless" if "ServerlessConfig" in variant else "realtime"


def _existing_endpoint(sagemaker, endpoint_name: str, mode: str) -> None:
    sagemaker.create_model(
        ModelName="previous-model",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1", "ModelDataUrl": "s3://b/m.tar.gz"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
    )
    capacity = (
        {"ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 5}}
        if mode == "serverless"
        else {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=_PREVIOUS_CONFIG,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "previous-model", **capacity}],
    )
    sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=_PREVIOUS_CONFIG)


def _registry(definition: dict) -> str:
    """Create what the Register states write to (the bucket, the model package group); its name."""
    states = definition["States"]
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=states["WriteEvidence"]["Parameters"]["Bucket"])
    group = states["RegisterModel"]["Parameters"]["ModelPackageGroupName"]
    boto3.client("sagemaker", region_name=REGION).create_model_package_group(ModelPackageGroupName=group)
    return group


def register_version(sagemaker, group: str, approval: str, model_data: str | None = None, training_job: str = "imgclf-1a2b3c4d-final") -> str:
    """A version as the pipeline registers it (its provenance in CustomerMetadataProperties)."""
    return sagemaker.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1",
                            "ModelDataUrl": model_data or f"s3://bucket/runs/{training_job}/output/model.tar.gz"}],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus=approval,
        CustomerMetadataProperties={
            "execution": "arn:aws:states:us-east-1:123456789012:execution:imgclf-pipeline:earlier",
            "training_job": training_job,
            "tuning_job": training_job.replace("-final", "-tune"),
        },
        ModelMetrics={"ModelQuality": {"Statistics": {
            "ContentType": "application/json", "S3Uri": f"s3://bucket/runs/{training_job}/evidence/metrics.json"}}},
    )["ModelPackageArn"]
