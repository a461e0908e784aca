"""The model registry and the release: the requests that register a gated model as a version of the
stack's model package group, set its approval, deploy a version, and roll a deployment out safely.

Pure functions, like infra/sagemaker_requests.py, checked against botocore's SageMaker model by
tests/infra/test_release_requests.py. docs/release.md tells the story.
"""
from __future__ import annotations

from imgclf_serving.image_decode import ACCEPTED_CONTENT_TYPES
from infra.config import Config
from infra.layout import model_package_group_name, rollback_alarm_name
from infra.sagemaker_requests import JobLocations, serving_container

#: ModelApprovalStatus by `release.approval`.
APPROVAL = {"auto": "Approved", "manual": "PendingManualApproval"}
#: What `imgclf models approve|reject` may set.
DECISIONS = {"approve": "Approved", "reject": "Rejected"}
#: The endpoint metrics (AWS/SageMaker, per variant) whose alarms roll a deployment back.
ROLLBACK_METRICS = ("Invocation5XXErrors", "ModelLatency")
#: The detail-type SageMaker gives a model package's state change on EventBridge.
PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"


def model_package_group_request(cfg: Config) -> dict:
    """CreateModelPackageGroup (the stack creates the group; tests check the same fields)."""
    return {
        "ModelPackageGroupName": model_package_group_name(cfg),
        "ModelPackageGroupDescription": f"{cfg.name}: image classifiers that passed the gate",
    }


def model_package_request(cfg: Config, loc: JobLocations, model_data_url: str, evidence_uri: str, metadata: dict[str, str]) -> dict:
    """CreateModelPackage: one version of the group. Its inference spec is the serving container
    CreateModel would use; its evidence (metrics, verdicts, hyperparameters, provenance) is a JSON
    file in S3 named by ModelMetrics; `metadata` (provenance, at most 256 characters a value) is
    also kept as CustomerMetadataProperties, so that a deployment of the version can report it."""
    spec: dict = {
        "Containers": [serving_container(cfg, loc, model_data_url)],
        "SupportedContentTypes": list(ACCEPTED_CONTENT_TYPES),
        "SupportedResponseMIMETypes": ["application/json"],
    }
    if cfg.endpoint.mode == "realtime":
        spec["SupportedRealtimeInferenceInstanceTypes"] = [cfg.endpoint.instance_type]
    return {
        "ModelPackageGroupName": model_package_group_name(cfg),
        "ModelPackageDescription": f"{cfg.name}: passed the gate (test accuracy, rules); evidence in ModelMetrics",
        "InferenceSpecification": spec,
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evidence_uri}}},
        "ModelApprovalStatus": APPROVAL[cfg.release.approval],
        "CustomerMetadataProperties": metadata,
    }


def approval_request(package_arn: str, decision: str, reason: str | None = None) -> dict:
    """UpdateModelPackage: approve or reject one version."""
    request = {"ModelPackageArn": package_arn, "ModelApprovalStatus": DECISIONS[decision]}
    if reason:
        request["ApprovalDescription"] = reason
    return request


def rollback_alarm_names(cfg: Config) -> list[str]:
    """The alarms a deployment watches: the endpoint's 5XX and model latency (infra/release.py) and
    the front door's error rate (infra/monitoring.py)."""
    from infra.monitoring import alarm_name_prefix

    return [*(rollback_alarm_name(cfg, metric) for metric in ROLLBACK_METRICS), f"{alarm_name_prefix(cfg)}error-rate"]


def deployment_config(cfg: Config) -> dict:
    """UpdateEndpoint's DeploymentConfig: blue/green with the alarms watched for automatic rollback.

    Real-time: canary first (`release.canary_percent` of the new fleet's capacity), bake, then all
    traffic, bake again before the old fleet goes. Serverless endpoints have no instances to size a
    canary in, so the whole traffic moves at once and the same alarms watch the bake before the
    old fleet goes; deployment guardrails exclude serverless endpoints only from rolling
    deployments (SageMaker developer guide, "Exclusions")."""
    bake = cfg.release.bake_minutes * 60
    if cfg.endpoint.mode == "realtime":
        routing = {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": cfg.release.canary_percent},
            "WaitIntervalInSeconds": bake,
        }
    else:
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": bake}
    return {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": bake},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in rollback_alarm_names(cfg)]},
    }


def approval_event_pattern(cfg: Config) -> dict:
    """The EventBridge pattern of a version of this stack's group becoming Approved."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": [PACKAGE_STATE_CHANGE],
        "detail": {"ModelPackageGroupName": [model_package_group_name(cfg)], "ModelApprovalStatus": ["Approved"]},
    }
